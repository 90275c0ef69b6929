//! Condition helpers with Flux/kstatus semantics (fluxcd/pkg `runtime/conditions/setter.go`):
//! `Ready` is normal-true; `Reconciling` and `Stalled` are abnormal-true, present only while
//! true, and marking one removes the other. Timestamps are whole seconds and move only on a
//! real change, so an unchanged status serializes to the same bytes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::names::condition_type::{READY, RECONCILING, STALLED};

/// A condition to set; `observedGeneration` and `lastTransitionTime` are filled by
/// [`set_condition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl NewCondition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// `now` cut to whole seconds, as Kubernetes serializes `metav1.Time`.
pub fn whole_seconds(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Set `new` in `conditions`.
///
/// Guarantees: `observedGeneration` of the condition is `generation`; `lastTransitionTime`
/// changes only if status, reason or message changed; `Reconciling`/`Stalled` set to false are
/// removed, and setting one true removes the other; the list is sorted `Stalled`,
/// `Reconciling`, `Ready`, then alphabetically.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    new: NewCondition,
    generation: i64,
    now: Timestamp,
) {
    let abnormal = new.type_ == RECONCILING || new.type_ == STALLED;
    if abnormal && !new.status {
        conditions.retain(|c| c.type_ != new.type_);
        sort_conditions(conditions);
        return;
    }
    if abnormal {
        let other = if new.type_ == RECONCILING {
            STALLED
        } else {
            RECONCILING
        };
        conditions.retain(|c| c.type_ != other);
    }
    let status = if new.status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != new.reason
                || existing.message != new.message;
            if changed {
                existing.status = status.to_owned();
                existing.reason = new.reason.to_owned();
                existing.message = new.message;
                existing.last_transition_time = whole_seconds(now);
            }
            existing.observed_generation = Some(generation);
        }
        None => conditions.push(Condition {
            type_: new.type_.to_owned(),
            status: status.to_owned(),
            reason: new.reason.to_owned(),
            message: new.message,
            observed_generation: Some(generation),
            last_transition_time: whole_seconds(now),
        }),
    }
    sort_conditions(conditions);
}

/// Remove a condition type (no-op when absent).
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of this type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of this type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

fn sort_key(type_: &str) -> (u8, &str) {
    match type_ {
        STALLED => (0, type_),
        RECONCILING => (1, type_),
        READY => (2, type_),
        _ => (3, type_),
    }
}

/// Sort for humans: `Stalled`, `Reconciling`, `Ready`, then the rest alphabetically.
pub fn sort_conditions(conditions: &mut [Condition]) {
    conditions.sort_by(|a, b| sort_key(&a.type_).cmp(&sort_key(&b.type_)));
}
