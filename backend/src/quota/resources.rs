//! The memory and CPU each instance of an app runs with: what it asks for,
//! what it stores (`None` follows the operator's default), and the per-app
//! bounds.

use super::Footprint;
use crate::error::FieldError;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Below this an app is unlikely to start at all.
pub const MIN_MEMORY_MB: u32 = 64;
/// A twentieth of a core.
pub const MIN_CPU_MILLIS: u32 = 50;

/// What one app gets by default and may ask for at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppBounds {
    pub default_memory_mb: u32,
    pub default_cpu_millis: u32,
    pub max_memory_mb: u32,
    pub max_cpu_millis: u32,
}

/// The memory and CPU an app's instances each run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppResources {
    /// Memory limit of each instance, in MB.
    #[schema(example = 512)]
    pub memory_mb: u32,
    /// CPU limit of each instance, in millicores (1000 = one core).
    #[schema(example = 1000)]
    pub cpu_millis: u32,
}

impl AppResources {
    /// What these resources times `replicas` take of the tenant's quota.
    pub(super) fn times(self, replicas: u32) -> Footprint {
        Footprint {
            memory_mb: u64::from(self.memory_mb) * u64::from(replicas),
            cpu_millis: u64::from(self.cpu_millis) * u64::from(replicas),
        }
    }
}

impl From<AppResources> for berth_proto::Resources {
    fn from(resources: AppResources) -> Self {
        Self {
            cpu_millis: Some(resources.cpu_millis),
            memory_mb: Some(resources.memory_mb),
        }
    }
}

/// A change of an app's resources: absent leaves a value as it is, `null`
/// returns it to the operator's default.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 256)]
    pub memory_mb: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 500)]
    pub cpu_millis: Option<Option<u32>>,
}

/// `Some(None)` for an explicit null, `None` (via `default`) when absent.
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An app's stored choice: `None` follows the operator's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredResources {
    pub memory_mb: Option<u32>,
    pub cpu_millis: Option<u32>,
}

impl StoredResources {
    /// From the `apps` columns (NULL, or a positive integer).
    pub fn from_columns(memory_mb: Option<i32>, cpu_millis: Option<i32>) -> Self {
        Self {
            memory_mb: memory_mb.and_then(|v| u32::try_from(v).ok()),
            cpu_millis: cpu_millis.and_then(|v| u32::try_from(v).ok()),
        }
    }

    /// This choice with `request` applied.
    pub fn apply(self, request: &ResourcesRequest) -> Self {
        Self {
            memory_mb: request.memory_mb.unwrap_or(self.memory_mb),
            cpu_millis: request.cpu_millis.unwrap_or(self.cpu_millis),
        }
    }

    pub fn memory_column(self) -> Option<i32> {
        self.memory_mb.and_then(|v| i32::try_from(v).ok())
    }

    pub fn cpu_column(self) -> Option<i32> {
        self.cpu_millis.and_then(|v| i32::try_from(v).ok())
    }
}

impl AppBounds {
    /// The values an app with `stored` runs with.
    pub fn effective(&self, stored: StoredResources) -> AppResources {
        AppResources {
            memory_mb: stored.memory_mb.unwrap_or(self.default_memory_mb),
            cpu_millis: stored.cpu_millis.unwrap_or(self.default_cpu_millis),
        }
    }

    /// Field errors (`resources.memory_mb`, `resources.cpu_millis`) for
    /// values out of the per-app bounds.
    pub fn check(&self, request: &ResourcesRequest) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(Some(memory)) = request.memory_mb {
            if !(MIN_MEMORY_MB..=self.max_memory_mb).contains(&memory) {
                errors.push(FieldError::new(
                    "resources.memory_mb",
                    format!(
                        "must be between {MIN_MEMORY_MB} and {} (MB)",
                        self.max_memory_mb
                    ),
                ));
            }
        }
        if let Some(Some(cpu)) = request.cpu_millis {
            if !(MIN_CPU_MILLIS..=self.max_cpu_millis).contains(&cpu) {
                errors.push(FieldError::new(
                    "resources.cpu_millis",
                    format!(
                        "must be between {MIN_CPU_MILLIS} and {} (millicores)",
                        self.max_cpu_millis
                    ),
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::Quotas;

    #[test]
    fn stored_nulls_follow_the_defaults_and_requests_apply_field_by_field() {
        let bounds = Quotas::default().app;
        let stored = StoredResources::from_columns(Some(256), None);
        assert_eq!(
            bounds.effective(stored),
            AppResources {
                memory_mb: 256,
                cpu_millis: 1000
            }
        );
        let request: ResourcesRequest =
            serde_json::from_str(r#"{"memory_mb": null, "cpu_millis": 250}"#).unwrap();
        let changed = stored.apply(&request);
        assert_eq!(changed, StoredResources::from_columns(None, Some(250)));
        let absent: ResourcesRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(stored.apply(&absent), stored);
        assert!(serde_json::from_str::<ResourcesRequest>(r#"{"disk_mb": 1}"#).is_err());
    }

    #[test]
    fn per_app_bounds_name_the_field() {
        let bounds = Quotas::default().app;
        let request = ResourcesRequest {
            memory_mb: Some(Some(8192)),
            cpu_millis: Some(Some(10)),
        };
        let fields: Vec<_> = bounds
            .check(&request)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["resources.memory_mb", "resources.cpu_millis"]);
        let fine = ResourcesRequest {
            memory_mb: Some(Some(4096)),
            cpu_millis: Some(None),
        };
        assert!(bounds.check(&fine).is_empty());
    }
}
