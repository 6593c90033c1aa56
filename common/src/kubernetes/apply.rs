//! Server-side apply of rendered documents.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind, TypeMeta};
use serde_json::Value;

/// The field manager of everything berth applies.
pub const FIELD_MANAGER: &str = "berth";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A rendering bug: the document lacks what an apply needs.
    #[error("cannot apply a document without {0}")]
    Incomplete(&'static str),
    #[error("applying {kind} `{name}`: {source}")]
    Api {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// The API server's own error, when it answered.
    pub fn api_error(&self) -> Option<&kube::Error> {
        match self {
            ApplyError::Api { source, .. } => Some(source),
            ApplyError::Incomplete(_) => None,
        }
    }
}

/// Applies `document` (server-side apply, field manager `berth`, taking
/// over fields another manager set: berth owns what it applies) and returns
/// the object as the API server now has it. Applying the same document again
/// changes nothing. The resource's plural is derived from its kind, so no
/// discovery request is made.
pub async fn apply(client: &kube::Client, document: &Value) -> Result<DynamicObject, ApplyError> {
    let types: TypeMeta = serde_json::from_value(document.clone())
        .map_err(|_| ApplyError::Incomplete("apiVersion and kind"))?;
    let gvk = GroupVersionKind::try_from(&types)
        .map_err(|_| ApplyError::Incomplete("a valid apiVersion"))?;
    let resource = ApiResource::from_gvk(&gvk);
    let name = document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or(ApplyError::Incomplete("metadata.name"))?;
    let api: Api<DynamicObject> = match document
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(document))
        .await
        .map_err(|source| ApplyError::Api {
            kind: types.kind.clone(),
            name: name.to_owned(),
            source,
        })
}

/// Applies the documents one after another, in order (a namespace before
/// what lives in it).
pub async fn apply_all(
    client: &kube::Client,
    documents: &[Value],
) -> Result<Vec<DynamicObject>, ApplyError> {
    let mut applied = Vec::with_capacity(documents.len());
    for document in documents {
        applied.push(apply(client, document).await?);
    }
    Ok(applied)
}
