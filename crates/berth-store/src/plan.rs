//! Turning a batch of ops into the events of one revision, shared by the backends.

use std::collections::HashMap;

use crate::{Entry, Event, Expect, Op, Result, Revision, StoreError};

/// What a backend knows about a stored key: its create and mod revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRevisions {
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// Checks every expectation in `ops` against the state before the batch (`current`), then
/// computes the events the batch makes at `revision`, applying ops in order. Deletes of
/// keys that do not exist make no event; an empty result means the batch changes nothing.
pub(crate) fn plan(
    ops: Vec<Op>,
    revision: Revision,
    mut current: impl FnMut(&str) -> Result<Option<KeyRevisions>>,
) -> Result<Vec<Event>> {
    for op in &ops {
        let (key, expect) = match op {
            Op::Put { key, expect, .. } | Op::Delete { key, expect } => (key, expect),
        };
        if let Some(expect) = expect {
            let actual = current(key)?.map(|r| r.mod_revision);
            check(key, expect, actual)?;
        }
    }

    // Keys already touched by this batch: `Some(create_revision)` when the key exists
    // after the ops so far, `None` when one of them deleted it.
    let mut touched: HashMap<String, Option<Revision>> = HashMap::new();
    let mut events = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Put { key, value, .. } => {
                let existing = match touched.get(&key) {
                    Some(state) => *state,
                    None => current(&key)?.map(|r| r.create_revision),
                };
                let create_revision = existing.unwrap_or(revision);
                touched.insert(key.clone(), Some(create_revision));
                events.push(Event::Put(Entry {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                }));
            }
            Op::Delete { key, .. } => {
                let exists = match touched.get(&key) {
                    Some(state) => state.is_some(),
                    None => current(&key)?.is_some(),
                };
                if exists {
                    touched.insert(key.clone(), None);
                    events.push(Event::Delete {
                        key,
                        mod_revision: revision,
                    });
                }
            }
        }
    }
    Ok(events)
}

fn check(key: &str, expect: &Expect, actual: Option<Revision>) -> Result<()> {
    let holds = match (expect, actual) {
        (Expect::Absent, None) => true,
        (Expect::ModRevision(want), Some(have)) => *want == have,
        _ => false,
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            key: key.to_string(),
            expected: expect.clone(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, expect: Option<Expect>) -> Op {
        Op::Put {
            key: key.to_string(),
            value: value.as_bytes().to_vec(),
            expect,
        }
    }

    fn del(key: &str, expect: Option<Expect>) -> Op {
        Op::Delete {
            key: key.to_string(),
            expect,
        }
    }

    fn existing(key: &str) -> Result<Option<KeyRevisions>> {
        Ok((key == "a").then_some(KeyRevisions {
            create_revision: 2,
            mod_revision: 5,
        }))
    }

    #[test]
    fn put_keeps_create_revision_of_existing_key() {
        let events = plan(vec![put("a", "1", None), put("b", "2", None)], 9, existing).unwrap();
        let Event::Put(a) = &events[0] else {
            panic!("expected a put, got {events:?}")
        };
        assert_eq!((a.create_revision, a.mod_revision), (2, 9));
        let Event::Put(b) = &events[1] else {
            panic!("expected a put, got {events:?}")
        };
        assert_eq!((b.create_revision, b.mod_revision), (9, 9));
    }

    #[test]
    fn delete_of_absent_key_makes_no_event() {
        let events = plan(vec![del("missing", None)], 9, existing).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn expectations_see_state_before_the_batch() {
        // The put makes "b" exist, but the expectation on the later op is checked
        // against the state before the batch, where "b" is absent.
        let events = plan(
            vec![put("b", "1", None), put("b", "2", Some(Expect::Absent))],
            9,
            existing,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn delete_then_put_in_one_batch_recreates_the_key() {
        let events = plan(vec![del("a", None), put("a", "x", None)], 9, existing).unwrap();
        assert_eq!(events.len(), 2);
        let Event::Put(a) = &events[1] else {
            panic!("expected a put, got {events:?}")
        };
        assert_eq!(a.create_revision, 9, "a deleted key is created anew");
    }

    #[test]
    fn failing_expectation_is_a_conflict_with_the_actual_revision() {
        let err = plan(
            vec![
                put("b", "1", None),
                put("a", "2", Some(Expect::ModRevision(4))),
            ],
            9,
            existing,
        )
        .unwrap_err();
        match err {
            StoreError::Conflict {
                key,
                expected,
                actual,
            } => {
                assert_eq!(key, "a");
                assert_eq!(expected, Expect::ModRevision(4));
                assert_eq!(actual, Some(5));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let err = plan(vec![del("a", Some(Expect::Absent))], 9, existing).unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                actual: Some(5),
                ..
            }
        ));
    }
}
