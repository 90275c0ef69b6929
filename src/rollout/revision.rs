//! Revision identity (§3) and `revisionFrom` extraction (§3.5): which commit a target's
//! current template carries. Pure functions over the target's JSON.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::json::{at, str_at};
use crate::api::deployment::RevisionFrom;

// Constant patterns: a compile failure is a programming error the tests catch.
#[allow(clippy::expect_used)]
static COMMIT_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[0-9a-f]{7,40}$").expect("commit pattern is a valid regex"));
#[allow(clippy::expect_used)]
static TAG_SUFFIX_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("[-_.]([0-9a-f]{7,40})$").expect("tag suffix pattern is a valid regex")
});

/// The commit and ref a target's current template carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetCommit {
    pub sha: Option<String>,
    pub ref_name: Option<String>,
}

/// Read the commit as `revisionFrom` says: an annotation on the pod template (then on the
/// object itself, for kinds without a template such as Flux or Argo CD objects), or the
/// image tag of a named container. A value that does not look like a commit (7 to 40 lowercase
/// hex, GitLab resolves abbreviations) gives `sha: None`, so nothing is reported for it.
pub fn commit_from_target(object: &Value, from: &RevisionFrom) -> TargetCommit {
    let raw = if let Some(annotation) = &from.annotation {
        annotation_value(object, annotation)
    } else if let Some(container) = &from.container {
        container_image(object, container).and_then(image_tag_or_digest)
    } else {
        None
    };
    let sha = raw.and_then(|v| commit_in(&v));
    let ref_name = from
        .ref_annotation
        .as_deref()
        .and_then(|a| annotation_value(object, a))
        .filter(|r| !r.is_empty());
    TargetCommit { sha, ref_name }
}

fn annotation_value(object: &Value, key: &str) -> Option<String> {
    str_at(
        object,
        &["spec", "template", "metadata", "annotations", key],
    )
    .or_else(|| str_at(object, &["metadata", "annotations", key]))
    .map(str::to_owned)
}

fn container_image<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    let spec = at(object, &["spec", "template", "spec"])?;
    ["containers", "initContainers"]
        .iter()
        .filter_map(|list| spec.get(list).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|c| c.get("image").and_then(Value::as_str))
}

/// The tag of an image reference (`registry:5000/app:tag@sha256:...` → `tag`), else its digest.
pub fn image_tag_or_digest(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A ':' after the last '/' separates the tag; one before it is a registry port.
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    match last_segment.split_once(':') {
        Some((_, tag)) if !tag.is_empty() => Some(tag.to_owned()),
        _ => digest.map(str::to_owned),
    }
}

/// A commit sha in a value: the whole value, or a `-<sha>` style suffix (`v1.2.3-1a2b3c4d`).
pub fn commit_in(value: &str) -> Option<String> {
    if COMMIT_RE.is_match(value) {
        return Some(value.to_owned());
    }
    TAG_SUFFIX_RE
        .captures(value)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
}
