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
    /// `Unknown` instead of `status` (kstatus: not known yet).
    pub unknown: bool,
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
            unknown: false,
            reason,
            message: message.into(),
        }
    }

    /// A condition whose status is `Unknown`.
    pub fn unknown(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            unknown: true,
            ..Self::new(type_, false, reason, message)
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
    let status = match (new.unknown, new.status) {
        (true, _) => "Unknown",
        (false, true) => "True",
        (false, false) => "False",
    };
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cond(
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
        generation: i64,
        time: &str,
    ) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(generation),
            last_transition_time: Time(at(time)),
        }
    }

    const T0: &str = "2026-01-01T12:00:00Z";
    const T1: &str = "2026-01-01T12:05:00.750Z";
    const T1_WHOLE: &str = "2026-01-01T12:05:00Z";

    #[test]
    fn set_condition_table() {
        let ready = |status: &str, reason: &str, msg: &str, g: i64, t: &str| {
            cond(READY, status, reason, msg, g, t)
        };
        type Case = (
            &'static str,
            Vec<Condition>,
            NewCondition,
            i64,
            Vec<Condition>,
        );
        let cases: Vec<Case> = vec![
            (
                "new condition gets whole-second time and generation",
                vec![],
                NewCondition::new(READY, true, "RolloutComplete", "done"),
                3,
                vec![ready("True", "RolloutComplete", "done", 3, T1_WHOLE)],
            ),
            (
                "same state keeps the transition time",
                vec![ready("True", "RolloutComplete", "done", 3, T0)],
                NewCondition::new(READY, true, "RolloutComplete", "done"),
                3,
                vec![ready("True", "RolloutComplete", "done", 3, T0)],
            ),
            (
                "same state, new generation: only observedGeneration moves",
                vec![ready("True", "RolloutComplete", "done", 3, T0)],
                NewCondition::new(READY, true, "RolloutComplete", "done"),
                4,
                vec![ready("True", "RolloutComplete", "done", 4, T0)],
            ),
            (
                "changed reason moves the time",
                vec![ready("False", "RolloutProgressing", "x", 3, T0)],
                NewCondition::new(READY, false, "RolloutFailed", "x"),
                3,
                vec![ready("False", "RolloutFailed", "x", 3, T1_WHOLE)],
            ),
            (
                "changed message moves the time",
                vec![ready("False", "RolloutProgressing", "1 of 3", 3, T0)],
                NewCondition::new(READY, false, "RolloutProgressing", "2 of 3"),
                3,
                vec![ready("False", "RolloutProgressing", "2 of 3", 3, T1_WHOLE)],
            ),
            (
                "changed status moves the time",
                vec![ready("False", "RolloutProgressing", "x", 3, T0)],
                NewCondition::new(READY, true, "RolloutProgressing", "x"),
                3,
                vec![ready("True", "RolloutProgressing", "x", 3, T1_WHOLE)],
            ),
            (
                "abnormal false is removed",
                vec![
                    cond(RECONCILING, "True", "RolloutProgressing", "x", 3, T0),
                    ready("False", "R", "x", 3, T0),
                ],
                NewCondition::new(RECONCILING, false, "", ""),
                3,
                vec![ready("False", "R", "x", 3, T0)],
            ),
            (
                "marking stalled removes reconciling and sorts first",
                vec![
                    ready("False", "R", "x", 3, T0),
                    cond(RECONCILING, "True", "RolloutProgressing", "x", 3, T0),
                ],
                NewCondition::new(STALLED, true, "InvalidSpec", "bad"),
                3,
                vec![
                    cond(STALLED, "True", "InvalidSpec", "bad", 3, T1_WHOLE),
                    ready("False", "R", "x", 3, T0),
                ],
            ),
            (
                "marking reconciling removes stalled",
                vec![cond(STALLED, "True", "InvalidSpec", "bad", 3, T0)],
                NewCondition::new(RECONCILING, true, "RolloutProgressing", "x"),
                4,
                vec![cond(
                    RECONCILING,
                    "True",
                    "RolloutProgressing",
                    "x",
                    4,
                    T1_WHOLE,
                )],
            ),
            (
                "other types sort alphabetically after Ready",
                vec![
                    cond("Zeta", "True", "Z", "", 1, T0),
                    ready("True", "R", "", 1, T0),
                    cond("Alpha", "True", "A", "", 1, T0),
                ],
                NewCondition::new(RECONCILING, true, "P", "p"),
                1,
                vec![
                    cond(RECONCILING, "True", "P", "p", 1, T1_WHOLE),
                    ready("True", "R", "", 1, T0),
                    cond("Alpha", "True", "A", "", 1, T0),
                    cond("Zeta", "True", "Z", "", 1, T0),
                ],
            ),
        ];
        for (name, mut before, new, generation, want) in cases {
            set_condition(&mut before, new, generation, at(T1));
            assert_eq!(before, want, "case {name}");
        }
    }

    #[test]
    fn unchanged_conditions_serialize_identically() {
        let mut a = Vec::new();
        set_condition(&mut a, NewCondition::new(READY, true, "X", "m"), 1, at(T0));
        let first = serde_json::to_string(&a).unwrap();
        set_condition(&mut a, NewCondition::new(READY, true, "X", "m"), 1, at(T1));
        assert_eq!(serde_json::to_string(&a).unwrap(), first);
    }
}
