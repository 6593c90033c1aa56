//! The table `make chaos` prints.

use super::faults::{self, Kind};
use super::invariants::Checks;
use super::{workload, Args, IN_PROGRESS};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub struct Report {
    seed: u64,
    args: Args,
    deployments: usize,
    actions: BTreeMap<String, usize>,
    refused: BTreeMap<String, usize>,
    faults: BTreeMap<Kind, usize>,
    coverage: BTreeMap<(Kind, String), usize>,
    exits: Vec<String>,
    checks: Checks,
}

impl Report {
    pub fn new(
        seed: u64,
        args: &Args,
        workload: &workload::Outcome,
        faults: &faults::Outcome,
        checks: Checks,
    ) -> Self {
        let mut kinds = BTreeMap::new();
        for fault in &faults.faults {
            *kinds.entry(fault.kind).or_default() += 1;
        }
        Self {
            seed,
            args: args.clone(),
            deployments: workload.deployments.len(),
            actions: workload.actions.clone(),
            refused: workload.refused.clone(),
            faults: kinds,
            coverage: faults.coverage.clone(),
            exits: faults.exits.clone(),
            checks,
        }
    }

    pub fn violations(&self) -> usize {
        self.checks.violations.len()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{:.1} s", sorted[index].as_secs_f64())
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checks = &self.checks;
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        writeln!(f, "\nberth chaos: seed {} on {cpus} cores, {} copies of each process but the log-streamer", self.seed, self.args.copies)?;
        writeln!(f, "{:-<72}", "")?;
        writeln!(f, "{:<38}{}", "deployments asked for", self.deployments)?;
        let actions: Vec<String> = self
            .actions
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect();
        writeln!(f, "{:<38}{}", "  tenants' actions", actions.join(", "))?;
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(a, n)| format!("{a}: {n}"))
            .collect();
        writeln!(
            f,
            "{:<38}{}",
            "  answers other than success",
            refused.join(", ")
        )?;
        let total: usize = self.faults.values().sum();
        writeln!(f, "{:<38}{total}", "faults injected")?;
        for (kind, count) in &self.faults {
            writeln!(f, "  {:<36}{count}", kind.label())?;
        }
        writeln!(
            f,
            "{:<38}{}",
            "processes that exited by themselves",
            self.exits.len()
        )?;
        for exit in &self.exits {
            writeln!(f, "  {exit}")?;
        }
        let finals: Vec<String> = checks
            .final_states
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        writeln!(
            f,
            "{:<38}{}",
            "final states (every deployment)",
            finals.join(", ")
        )?;
        for (reason, count) in &checks.reasons {
            writeln!(f, "  {count:>4} {reason}")?;
        }
        let mut to_live = checks.to_live.clone();
        to_live.sort();
        writeln!(
            f,
            "{:<38}p50 {}, p99 {} ({} went live)",
            "request → live under faults",
            percentile(&to_live, 0.5),
            percentile(&to_live, 0.99),
            to_live.len()
        )?;
        writeln!(
            f,
            "{:<38}{}",
            "last fault → nothing in progress",
            seconds(checks.settled_after)
        )?;
        writeln!(
            f,
            "{:<38}{} later (bound {} s); {} after the last fault",
            "→ what runs equals the database",
            seconds(checks.converged_after),
            self.args.converge_secs,
            seconds(
                checks
                    .settled_after
                    .zip(checks.converged_after)
                    .map(|(a, b)| a + b)
            ),
        )?;
        let log = &checks.log;
        writeln!(
            f,
            "{:<38}{} lines of {} app runs: {} lost, {} repeated",
            "app log lines checked", log.lines, log.runs, log.lost, log.repeated
        )?;
        writeln!(
            f,
            "{:<38}{}",
            "invariant violations",
            checks.violations.len()
        )?;
        for violation in &checks.violations {
            writeln!(f, "  {violation}")?;
        }
        writeln!(
            f,
            "\nfaults met per in-progress state (want >= {} each):",
            self.args.coverage
        )?;
        write!(f, "  {:<24}", "")?;
        for state in IN_PROGRESS {
            write!(f, "{state:>10}")?;
        }
        writeln!(f)?;
        for kind in Kind::ALL {
            write!(f, "  {:<24}", kind.label())?;
            for state in IN_PROGRESS {
                let met = self
                    .coverage
                    .get(&(kind, state.to_owned()))
                    .copied()
                    .unwrap_or(0);
                write!(f, "{met:>10}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
