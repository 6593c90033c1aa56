//! The admission policy evaluated offline, as the API server would: the
//! requests' attributes, the Namespace they are made in, and the policy's
//! matchConditions, variables and validations in CEL.

use crate::{array, str_of};
use serde_json::Value;

/// The outcome of the admission policy for one request.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// The policy does not apply (someone other than the two workers).
    NotMatched,
    Allowed,
    /// With the messages of the failed validations.
    Denied(Vec<String>),
}

/// A Namespace as a worker sends it: berth's label if `managed`, and the
/// Pod Security level it enforces, if any.
pub(crate) fn namespace(name: &str, enforce: Option<&str>, managed: bool) -> Value {
    let mut labels = serde_json::Map::new();
    if managed {
        labels.insert("app.kubernetes.io/managed-by".into(), "berth".into());
    }
    if let Some(level) = enforce {
        labels.insert("pod-security.kubernetes.io/enforce".into(), level.into());
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// The Namespaces of the fake cluster the requests are made in.
fn fake_namespace(name: &str) -> Value {
    // berth-system too, as if someone had labelled it: the policy must keep
    // the workers out of it by its name alone.
    let managed = name.starts_with("berth-") && name != "berth-stranger";
    let enforce = managed.then(|| {
        if name.ends_with("-build") {
            "baseline"
        } else {
            "restricted"
        }
    });
    let mut namespace = namespace(name, enforce, managed);
    namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] = name.into();
    namespace
}

/// One admission request as the API server hands it to CEL: `resource` is
/// `plural` or `plural/subresource`; `object` is the new object (null for
/// DELETE), `old` the stored one (UPDATE, DELETE).
pub(crate) struct Request {
    pub(crate) user: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) group: &'static str,
    pub(crate) resource: &'static str,
    pub(crate) namespace: &'static str,
    pub(crate) name: &'static str,
    pub(crate) object: Value,
    pub(crate) old: Value,
}

fn cel_program(expression: &str, what: &str) -> cel::Program {
    cel::Program::compile(expression)
        .unwrap_or_else(|e| panic!("the policy's {what} is not CEL: {e}\n{expression}"))
}

/// Evaluates the policy like the API server: matchConditions, then the
/// variables, then every validation; an error denies (failurePolicy: Fail).
pub(crate) fn decide(policy: &Value, request: &Request) -> Verdict {
    let (resource, sub_resource) = request
        .resource
        .split_once('/')
        .unwrap_or((request.resource, ""));
    let is_namespace = resource == "namespaces";
    // The API server gives a Namespace request its own name as namespace,
    // and no namespaceObject.
    let namespace_object = if is_namespace || request.namespace.is_empty() {
        Value::Null
    } else {
        fake_namespace(request.namespace)
    };
    let mut context = cel::Context::default();
    let attributes = serde_json::json!({
        "operation": request.operation,
        "userInfo": {"username": request.user},
        "resource": {"group": request.group, "version": "v1", "resource": resource},
        "subResource": sub_resource,
        "name": request.name,
        "namespace": if is_namespace { request.name } else { request.namespace },
    });
    for (name, value) in [
        ("request", &attributes),
        ("object", &request.object),
        ("oldObject", &request.old),
        ("namespaceObject", &namespace_object),
    ] {
        context
            .add_variable(name, value.clone())
            .expect("JSON converts to CEL");
    }
    let spec = &policy["spec"];
    for condition in array(spec.get("matchConditions")) {
        let program = cel_program(str_of(condition, "/expression"), "matchCondition");
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Verdict::NotMatched,
            other => return Verdict::Denied(vec![format!("matchCondition: {other:?}")]),
        }
    }
    let mut variables: std::collections::HashMap<String, cel::Value> = Default::default();
    for variable in array(spec.get("variables")) {
        let name = str_of(variable, "/name");
        let program = cel_program(str_of(variable, "/expression"), "variable");
        match program.execute(&context) {
            Ok(value) => {
                variables.insert(name.to_owned(), value);
                context.add_variable_from_value("variables", variables.clone());
            }
            Err(e) => return Verdict::Denied(vec![format!("variable {name}: {e}")]),
        }
    }
    let mut denials = Vec::new();
    for validation in array(spec.get("validations")) {
        let program = cel_program(str_of(validation, "/expression"), "validation");
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                let message = match validation.get("messageExpression").and_then(Value::as_str) {
                    Some(expression) => {
                        match cel_program(expression, "messageExpression").execute(&context) {
                            Ok(cel::Value::String(message)) => message.to_string(),
                            other => panic!("messageExpression {expression} gave {other:?}"),
                        }
                    }
                    None => str_of(validation, "/message").to_owned(),
                };
                denials.push(message);
            }
            other => denials.push(format!("evaluation failed: {other:?}")),
        }
    }
    if denials.is_empty() {
        Verdict::Allowed
    } else {
        Verdict::Denied(denials)
    }
}
