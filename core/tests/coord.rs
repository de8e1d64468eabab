//! The coordination policy's handlers: exact output lists for each input.

use std::time::Duration;

use proptest::prelude::*;
use scrapepool_core::coord::{
    Answer, Child, CoordEvent, Coordination, Input, MemberOp, MemberRequest, NodeStat, Note, OpId,
    Output, Settings, Tree, TreeRead, RETRY_DELAY,
};
use scrapepool_core::member::{JobsSnapshot, MemberRecord, MemberState, MembersSnapshot};
use scrapepool_core::Timestamp;

const SESSION: i64 = 0x51;

fn record(id: &str, state: MemberState) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        state,
        version: "0.1.0".into(),
        web: "127.0.0.1:9000".into(),
        started_at: "2026-11-25T12:00:00Z".into(),
    }
}

fn json(r: &MemberRecord) -> Vec<u8> {
    serde_json::to_vec(r).unwrap()
}

/// A member znode created at `mzxid` s and last changed half a second later (server time).
fn child(r: &MemberRecord, mzxid: i64) -> Child {
    Child {
        name: r.id.clone(),
        data: json(r),
        mzxid,
        ctime: Timestamp(mzxid * 1000),
        mtime: Timestamp(mzxid * 1000 + 500),
    }
}

fn t(ms: i64) -> Timestamp {
    Timestamp(ms)
}

fn create(op: u64, r: &MemberRecord) -> Output {
    Output::Member {
        op: OpId(op),
        request: MemberOp::Create {
            path: format!("/members/{}", r.id),
            data: json(r),
        },
    }
}

/// A policy with a ready session: connected, watches set (ops 1, 2), both trees read once
/// (ops 3, 4: members at version 10 with `a`, no jobs at version 5).
fn ready() -> Coordination {
    let mut p = Coordination::new(Settings::default());
    assert_eq!(p.handle(t(0), Input::Tick), [Output::Connect]);
    p.handle(t(1), Input::SessionStarted { session: SESSION });
    p.handle(
        t(2),
        Input::WatchAnswered {
            op: OpId(1),
            result: Ok(()),
        },
    );
    p.handle(
        t(2),
        Input::WatchAnswered {
            op: OpId(2),
            result: Ok(()),
        },
    );
    let a = record("a", MemberState::Active);
    let members = TreeRead {
        pzxid: 9,
        cversion: 0,
        children: vec![child(&a, 10)],
    };
    p.handle(
        t(3),
        Input::ReadAnswered {
            op: OpId(3),
            result: Ok(members),
        },
    );
    p.handle(
        t(3),
        Input::ReadAnswered {
            op: OpId(4),
            result: Ok(TreeRead {
                pzxid: 5,
                cversion: 0,
                children: vec![],
            }),
        },
    );
    p
}

#[test]
fn connect_sets_watches_then_reads_and_tells_the_node() {
    let mut p = Coordination::new(Settings::default());
    assert_eq!(p.handle(t(0), Input::Tick), [Output::Connect]);
    assert_eq!(p.next_wake(), None, "nothing to do while connecting");
    assert_eq!(
        p.handle(t(5), Input::SessionStarted { session: SESSION }),
        [
            Output::Watch {
                op: OpId(1),
                tree: Tree::Members
            },
            Output::Watch {
                op: OpId(2),
                tree: Tree::Jobs
            },
        ]
    );
    assert_eq!(
        p.handle(
            t(6),
            Input::WatchAnswered {
                op: OpId(1),
                result: Ok(())
            }
        ),
        []
    );
    assert_eq!(
        p.handle(
            t(7),
            Input::WatchAnswered {
                op: OpId(2),
                result: Ok(())
            }
        ),
        [
            Output::Deliver(CoordEvent::SessionConnected),
            Output::Read {
                op: OpId(3),
                tree: Tree::Members
            },
            Output::Read {
                op: OpId(4),
                tree: Tree::Jobs
            },
        ]
    );
    let a = record("a", MemberState::Active);
    let read = TreeRead {
        pzxid: 3,
        cversion: 5,
        children: vec![child(&a, 7)],
    };
    assert_eq!(
        p.handle(
            t(8),
            Input::ReadAnswered {
                op: OpId(3),
                result: Ok(read)
            }
        ),
        [Output::Deliver(CoordEvent::MembersChanged(
            MembersSnapshot {
                version: 7,
                cversion: 5,
                changed_at: t(7_500),
                changed: [("a".to_string(), t(7_500))].into(),
                joined: [("a".to_string(), t(7_000))].into(),
                members: vec![a],
            }
        ))]
    );
    let jobs = TreeRead {
        pzxid: 12,
        cversion: 0,
        children: vec![Child {
            name: "j".into(),
            data: b"job_name: j\n".to_vec(),
            mzxid: 4,
            ctime: t(4_000),
            mtime: t(4_250),
        }],
    };
    assert_eq!(
        p.handle(
            t(8),
            Input::ReadAnswered {
                op: OpId(4),
                result: Ok(jobs)
            }
        ),
        [Output::Deliver(CoordEvent::JobsChanged(JobsSnapshot {
            version: 12,
            changed_at: t(4_250),
            jobs: vec![("j".into(), "job_name: j\n".into())]
        }))]
    );
    assert_eq!(p.next_wake(), None);
}

#[test]
fn register_creates_the_ephemeral_znode() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    assert_eq!(
        p.handle(t(10), Input::Request(MemberRequest::Register(a.clone()))),
        [create(5, &a)]
    );
    assert_eq!(
        p.handle(
            t(11),
            Input::MemberAnswered {
                op: OpId(5),
                answer: Answer::Ok
            }
        ),
        []
    );
    // The same record again is nothing to do.
    assert_eq!(
        p.handle(t(12), Input::Request(MemberRequest::Register(a))),
        []
    );
    assert_eq!(p.next_wake(), None);
}

#[test]
fn a_register_before_the_session_is_carried_out_when_it_is_ready() {
    let mut p = Coordination::new(Settings::default());
    let a = record("a", MemberState::Active);
    p.handle(t(0), Input::Tick);
    assert_eq!(
        p.handle(t(0), Input::Request(MemberRequest::Register(a.clone()))),
        []
    );
    p.handle(t(1), Input::SessionStarted { session: SESSION });
    p.handle(
        t(2),
        Input::WatchAnswered {
            op: OpId(1),
            result: Ok(()),
        },
    );
    assert_eq!(
        p.handle(
            t(2),
            Input::WatchAnswered {
                op: OpId(2),
                result: Ok(())
            }
        ),
        [
            Output::Deliver(CoordEvent::SessionConnected),
            create(3, &a),
            Output::Read {
                op: OpId(4),
                tree: Tree::Members
            },
            Output::Read {
                op: OpId(5),
                tree: Tree::Jobs
            },
        ]
    );
}

#[test]
fn expiry_tells_the_node_and_the_new_session_re_registers() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    p.handle(t(10), Input::Request(MemberRequest::Register(a.clone())));
    p.handle(
        t(11),
        Input::MemberAnswered {
            op: OpId(5),
            answer: Answer::Ok,
        },
    );
    assert_eq!(
        p.handle(t(100), Input::Expired),
        [Output::Deliver(CoordEvent::SessionExpired), Output::Connect]
    );
    assert_eq!(
        p.handle(
            t(150),
            Input::SessionStarted {
                session: SESSION + 1
            }
        ),
        [
            Output::Watch {
                op: OpId(6),
                tree: Tree::Members
            },
            Output::Watch {
                op: OpId(7),
                tree: Tree::Jobs
            },
        ]
    );
    p.handle(
        t(151),
        Input::WatchAnswered {
            op: OpId(6),
            result: Ok(()),
        },
    );
    // Re-registration without waiting for the node to ask: the record died with the session.
    assert_eq!(
        p.handle(
            t(151),
            Input::WatchAnswered {
                op: OpId(7),
                result: Ok(())
            }
        ),
        [
            Output::Deliver(CoordEvent::SessionConnected),
            create(8, &a),
            Output::Read {
                op: OpId(9),
                tree: Tree::Members
            },
            Output::Read {
                op: OpId(10),
                tree: Tree::Jobs
            },
        ]
    );
    // The node's own Register after SessionConnected is the write already under way.
    assert_eq!(
        p.handle(t(152), Input::Request(MemberRequest::Register(a))),
        []
    );
    // The new session's first snapshot is delivered whatever its version.
    let read = TreeRead {
        pzxid: 2,
        cversion: 0,
        children: vec![],
    };
    assert_eq!(
        p.handle(
            t(153),
            Input::ReadAnswered {
                op: OpId(9),
                result: Ok(read)
            }
        ),
        [Output::Deliver(CoordEvent::MembersChanged(
            MembersSnapshot {
                version: 2,
                cversion: 0,
                ..MembersSnapshot::default()
            }
        ))]
    );
}

#[test]
fn a_write_error_is_retried_after_the_retry_delay() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    p.handle(t(10), Input::Request(MemberRequest::Register(a.clone())));
    assert_eq!(
        p.handle(
            t(20),
            Input::MemberAnswered {
                op: OpId(5),
                answer: Answer::Failed("connection loss".into())
            }
        ),
        [Output::Note(Note::WriteFailed {
            error: "connection loss".into(),
            attempt: 1
        })]
    );
    let at = t(20) + RETRY_DELAY;
    assert_eq!(p.next_wake(), Some(at));
    assert_eq!(p.handle(at - Duration::from_millis(1), Input::Tick), []);
    assert_eq!(p.handle(at, Input::Tick), [create(6, &a)]);
}

#[test]
fn writes_are_abandoned_after_the_attempt_budget_until_the_next_request() {
    let settings = Settings {
        request_attempts_max: 2,
        ..Settings::default()
    };
    let mut p = Coordination::new(settings);
    p.handle(t(0), Input::Tick);
    p.handle(t(1), Input::SessionStarted { session: SESSION });
    p.handle(
        t(2),
        Input::WatchAnswered {
            op: OpId(1),
            result: Ok(()),
        },
    );
    p.handle(
        t(2),
        Input::WatchAnswered {
            op: OpId(2),
            result: Ok(()),
        },
    );
    let a = record("a", MemberState::Active);
    assert_eq!(
        p.handle(t(3), Input::Request(MemberRequest::Register(a.clone()))),
        [create(5, &a)]
    );
    p.handle(
        t(4),
        Input::MemberAnswered {
            op: OpId(5),
            answer: Answer::Failed("x".into()),
        },
    );
    let at = t(4) + RETRY_DELAY;
    assert_eq!(p.handle(at, Input::Tick), [create(6, &a)]);
    assert_eq!(
        p.handle(
            at,
            Input::MemberAnswered {
                op: OpId(6),
                answer: Answer::Failed("x".into())
            }
        ),
        [Output::Note(Note::WriteAbandoned {
            error: "x".into(),
            attempts: 2
        })]
    );
    assert_eq!(p.handle(at + Duration::from_secs(60), Input::Tick), []);
    // Asking again (even for the same record) starts over.
    assert_eq!(
        p.handle(
            t(100_000),
            Input::Request(MemberRequest::Register(a.clone()))
        ),
        [create(7, &a)]
    );
}

#[test]
fn our_own_node_is_set_and_a_stale_sessions_node_replaced() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    let path = "/members/a".to_string();
    p.handle(t(10), Input::Request(MemberRequest::Register(a.clone())));
    // Left by an earlier session of ours (a restart before its expiry): delete, create again.
    assert_eq!(
        p.handle(
            t(11),
            Input::MemberAnswered {
                op: OpId(5),
                answer: Answer::NodeExists
            }
        ),
        [Output::Member {
            op: OpId(6),
            request: MemberOp::Stat { path: path.clone() }
        }]
    );
    let stale = NodeStat {
        ephemeral_owner: 0x99,
        version: 3,
    };
    assert_eq!(
        p.handle(
            t(12),
            Input::MemberAnswered {
                op: OpId(6),
                answer: Answer::Stat(Some(stale))
            }
        ),
        [
            Output::Note(Note::ReplacingStaleRecord {
                path: path.clone(),
                owner: 0x99
            }),
            Output::Member {
                op: OpId(7),
                request: MemberOp::Delete {
                    path: path.clone(),
                    version: Some(3)
                }
            },
        ]
    );
    assert_eq!(
        p.handle(
            t(13),
            Input::MemberAnswered {
                op: OpId(7),
                answer: Answer::Ok
            }
        ),
        [create(8, &a)]
    );
    assert_eq!(
        p.handle(
            t(14),
            Input::MemberAnswered {
                op: OpId(8),
                answer: Answer::Ok
            }
        ),
        []
    );
    // An update: create finds our own node, so its data is set at the version read.
    let d = record("a", MemberState::Draining);
    assert_eq!(
        p.handle(t(20), Input::Request(MemberRequest::Update(d.clone()))),
        [create(9, &d)]
    );
    p.handle(
        t(21),
        Input::MemberAnswered {
            op: OpId(9),
            answer: Answer::NodeExists,
        },
    );
    let ours = NodeStat {
        ephemeral_owner: SESSION,
        version: 0,
    };
    assert_eq!(
        p.handle(
            t(22),
            Input::MemberAnswered {
                op: OpId(10),
                answer: Answer::Stat(Some(ours))
            }
        ),
        [Output::Member {
            op: OpId(11),
            request: MemberOp::Set {
                path: path.clone(),
                data: json(&d),
                version: 0
            }
        }]
    );
    assert_eq!(
        p.handle(
            t(23),
            Input::MemberAnswered {
                op: OpId(11),
                answer: Answer::Ok
            }
        ),
        []
    );
    assert_eq!(
        p.handle(t(30), Input::Request(MemberRequest::Deregister)),
        [Output::Member {
            op: OpId(12),
            request: MemberOp::Delete {
                path,
                version: None
            }
        }]
    );
    assert_eq!(
        p.handle(
            t(31),
            Input::MemberAnswered {
                op: OpId(12),
                answer: Answer::NoNode
            }
        ),
        []
    );
    assert_eq!(p.next_wake(), None);
}

#[test]
fn a_request_during_a_write_is_written_after_it() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    let d = record("a", MemberState::Draining);
    p.handle(t(10), Input::Request(MemberRequest::Register(a)));
    assert_eq!(
        p.handle(t(11), Input::Request(MemberRequest::Update(d.clone()))),
        []
    );
    assert_eq!(
        p.handle(
            t(12),
            Input::MemberAnswered {
                op: OpId(5),
                answer: Answer::Ok
            }
        ),
        [create(6, &d)]
    );
}

#[test]
fn a_stale_snapshot_is_dropped_and_an_equal_one_is_nothing_new() {
    let mut p = ready();
    p.handle(t(10), Input::Notified(Tree::Members));
    assert_eq!(
        p.next_wake(),
        Some(t(30)),
        "notifications are coalesced for 20 ms"
    );
    assert_eq!(
        p.handle(t(30), Input::Tick),
        [Output::Read {
            op: OpId(5),
            tree: Tree::Members
        }]
    );
    // A lagging server answers an older tree than the one delivered (version 10).
    let old = TreeRead {
        pzxid: 8,
        cversion: 0,
        children: vec![],
    };
    assert_eq!(
        p.handle(
            t(31),
            Input::ReadAnswered {
                op: OpId(5),
                result: Ok(old)
            }
        ),
        [Output::Note(Note::StaleRead {
            tree: Tree::Members,
            version: 8,
            delivered: 10
        })]
    );
    p.handle(t(40), Input::Notified(Tree::Members));
    p.handle(t(60), Input::Tick);
    let same = TreeRead {
        pzxid: 9,
        cversion: 0,
        children: vec![child(&record("a", MemberState::Active), 10)],
    };
    assert_eq!(
        p.handle(
            t(61),
            Input::ReadAnswered {
                op: OpId(6),
                result: Ok(same)
            }
        ),
        []
    );
}

#[test]
fn notifications_during_a_read_cause_one_more_read() {
    let mut p = ready();
    p.handle(t(10), Input::Notified(Tree::Jobs));
    assert_eq!(
        p.handle(t(30), Input::Tick),
        [Output::Read {
            op: OpId(5),
            tree: Tree::Jobs
        }]
    );
    p.handle(t(31), Input::Notified(Tree::Jobs));
    p.handle(t(32), Input::Notified(Tree::Jobs));
    assert_eq!(
        p.next_wake(),
        None,
        "the read in flight covers nothing after its start"
    );
    let read = TreeRead {
        pzxid: 6,
        cversion: 0,
        children: vec![],
    };
    assert_eq!(
        p.handle(
            t(40),
            Input::ReadAnswered {
                op: OpId(5),
                result: Ok(read)
            }
        ),
        [Output::Deliver(CoordEvent::JobsChanged(JobsSnapshot {
            version: 6,
            ..JobsSnapshot::default()
        }))]
    );
    assert_eq!(p.next_wake(), Some(t(60)));
}

#[test]
fn a_failed_read_is_retried() {
    let mut p = ready();
    p.handle(t(10), Input::Notified(Tree::Members));
    p.handle(t(30), Input::Tick);
    assert_eq!(
        p.handle(
            t(31),
            Input::ReadAnswered {
                op: OpId(5),
                result: Err("timeout".into())
            }
        ),
        [Output::Note(Note::ReadFailed {
            tree: Tree::Members,
            error: "timeout".into()
        })]
    );
    assert_eq!(p.next_wake(), Some(t(31) + RETRY_DELAY));
}

#[test]
fn a_reconnection_re_reads_both_trees_and_resumes_a_pending_write() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    p.handle(t(10), Input::Request(MemberRequest::Register(a.clone())));
    assert_eq!(
        p.handle(t(11), Input::Disconnected),
        [Output::Deliver(CoordEvent::SessionDisconnected)]
    );
    p.handle(
        t(12),
        Input::MemberAnswered {
            op: OpId(5),
            answer: Answer::Failed("connection loss".into()),
        },
    );
    p.handle(t(13), Input::Notified(Tree::Members));
    assert_eq!(p.next_wake(), None, "nothing is tried while disconnected");
    assert_eq!(p.handle(t(5_000), Input::Tick), []);
    assert_eq!(
        p.handle(t(6_000), Input::Reconnected),
        [
            Output::Deliver(CoordEvent::SessionConnected),
            create(6, &a),
            Output::Read {
                op: OpId(7),
                tree: Tree::Members
            },
            Output::Read {
                op: OpId(8),
                tree: Tree::Jobs
            },
        ]
    );
}

#[test]
fn failed_connects_back_off_exponentially_up_to_the_maximum() {
    let mut p = Coordination::new(Settings::default());
    let mut now = t(0);
    let mut delays = Vec::new();
    assert_eq!(p.handle(now, Input::Tick), [Output::Connect]);
    for _ in 0..8 {
        let out = p.handle(
            now,
            Input::ConnectFailed {
                error: "refused".into(),
            },
        );
        assert!(
            matches!(&out[..], [Output::Note(Note::ConnectFailed { .. })]),
            "{out:?}"
        );
        let wake = p.next_wake().unwrap();
        delays.push(wake.since(now).as_millis());
        assert_eq!(p.handle(wake - Duration::from_millis(1), Input::Tick), []);
        now = wake;
        assert_eq!(p.handle(now, Input::Tick), [Output::Connect]);
    }
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
}

#[test]
fn a_watch_that_cannot_be_set_starts_a_new_session() {
    let mut p = Coordination::new(Settings::default());
    p.handle(t(0), Input::Tick);
    p.handle(t(1), Input::SessionStarted { session: SESSION });
    let out = p.handle(
        t(2),
        Input::WatchAnswered {
            op: OpId(1),
            result: Err("no".into()),
        },
    );
    assert_eq!(
        out,
        [Output::Note(Note::WatchFailed {
            error: "no".into(),
            retry_in: Duration::from_millis(100)
        })]
    );
    // The other watch's late answer belongs to the abandoned session.
    assert_eq!(
        p.handle(
            t(3),
            Input::WatchAnswered {
                op: OpId(2),
                result: Ok(())
            }
        ),
        []
    );
    assert_eq!(p.handle(t(102), Input::Tick), [Output::Connect]);
}

#[test]
fn answers_from_an_older_session_are_ignored() {
    let mut p = ready();
    let a = record("a", MemberState::Active);
    p.handle(t(10), Input::Request(MemberRequest::Register(a)));
    p.handle(t(11), Input::Notified(Tree::Members));
    p.handle(t(31), Input::Tick); // read op 6
    p.handle(t(40), Input::Expired);
    p.handle(
        t(41),
        Input::SessionStarted {
            session: SESSION + 1,
        },
    );
    assert_eq!(
        p.handle(
            t(42),
            Input::MemberAnswered {
                op: OpId(5),
                answer: Answer::Ok
            }
        ),
        []
    );
    let read = TreeRead {
        pzxid: 99,
        cversion: 0,
        children: vec![],
    };
    assert_eq!(
        p.handle(
            t(42),
            Input::ReadAnswered {
                op: OpId(6),
                result: Ok(read)
            }
        ),
        []
    );
    assert!(!p.is_ready());
}

#[test]
fn invalid_member_records_are_left_out_of_the_snapshot() {
    let mut p = ready();
    p.handle(t(10), Input::Notified(Tree::Members));
    p.handle(t(30), Input::Tick);
    let b = record("b", MemberState::Active);
    let read = TreeRead {
        pzxid: 20,
        cversion: 0,
        children: vec![
            Child {
                name: "bogus".into(),
                data: b"{not json".to_vec(),
                mzxid: 11,
                ctime: t(11_000),
                mtime: t(11_000),
            },
            Child {
                name: "liar".into(),
                data: json(&record("someone", MemberState::Active)),
                mzxid: 12,
                ctime: t(12_000),
                mtime: t(12_000),
            },
            child(&b, 21),
        ],
    };
    let out = p.handle(
        t(31),
        Input::ReadAnswered {
            op: OpId(5),
            result: Ok(read),
        },
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(matches!(&out[0], Output::Note(Note::MemberSkipped { name, .. }) if name == "bogus"));
    assert!(matches!(&out[1], Output::Note(Note::MemberSkipped { name, .. }) if name == "liar"));
    assert_eq!(
        out[2],
        Output::Deliver(CoordEvent::MembersChanged(MembersSnapshot {
            version: 21,
            cversion: 0,
            changed_at: t(21_500),
            changed: [("b".to_string(), t(21_500))].into(),
            joined: [("b".to_string(), t(21_000))].into(),
            members: vec![b],
        }))
    );
}

/// Inputs for the property: session changes, notifications, requests, and answers to
/// whatever operation is outstanding (or to none).
#[derive(Clone, Debug)]
enum Step {
    Tick(u16),
    Started,
    ConnectFailed,
    Disconnected,
    Reconnected,
    Expired,
    Notified(bool),
    Register(bool),
    Deregister,
    AnswerWatch(u8, bool),
    AnswerRead(u8, Option<i16>),
    AnswerMember(u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u16..2000).prop_map(Step::Tick),
        Just(Step::Started),
        Just(Step::ConnectFailed),
        Just(Step::Disconnected),
        Just(Step::Reconnected),
        Just(Step::Expired),
        any::<bool>().prop_map(Step::Notified),
        any::<bool>().prop_map(Step::Register),
        Just(Step::Deregister),
        (0u8..4, any::<bool>()).prop_map(|(o, ok)| Step::AnswerWatch(o, ok)),
        (0u8..4, proptest::option::of(0i16..100)).prop_map(|(o, v)| Step::AnswerRead(o, v)),
        (0u8..4, 0u8..6).prop_map(|(o, a)| Step::AnswerMember(o, a)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever happens: within one session the delivered versions of a tree only rise; the
    /// node hears `SessionConnected` only between a start and an expiry; a Tick at the wake
    /// time never finds nothing due twice in a row (no busy loop); at most one member write is
    /// outstanding.
    #[test]
    fn the_policy_keeps_its_promises(steps in proptest::collection::vec(step(), 1..120)) {
        let mut p = Coordination::new(Settings::default());
        let mut now = t(0);
        let mut last_op = 0u64;
        let mut delivered: [Option<i64>; 2] = [None, None];
        let mut member_ops_out = 0i32;
        let mut outstanding_member: Option<u64> = None;
        let a = record("a", MemberState::Active);
        let d = record("a", MemberState::Draining);
        for s in steps {
            let input = match s {
                Step::Tick(ms) => { now = now + Duration::from_millis(ms.into()); Input::Tick }
                Step::Started => Input::SessionStarted { session: SESSION },
                Step::ConnectFailed => Input::ConnectFailed { error: "x".into() },
                Step::Disconnected => Input::Disconnected,
                Step::Reconnected => Input::Reconnected,
                Step::Expired => Input::Expired,
                Step::Notified(m) => Input::Notified(if m { Tree::Members } else { Tree::Jobs }),
                Step::Register(active) => Input::Request(MemberRequest::Register(if active { a.clone() } else { d.clone() })),
                Step::Deregister => Input::Request(MemberRequest::Deregister),
                Step::AnswerWatch(back, ok) => Input::WatchAnswered {
                    op: OpId(last_op.saturating_sub(back.into())),
                    result: if ok { Ok(()) } else { Err("x".into()) },
                },
                Step::AnswerRead(back, v) => Input::ReadAnswered {
                    op: OpId(last_op.saturating_sub(back.into())),
                    result: v.map(|v| TreeRead { pzxid: v.into(), cversion: 0, children: vec![] }).ok_or_else(|| "x".to_string()),
                },
                Step::AnswerMember(back, a) => Input::MemberAnswered {
                    op: OpId(last_op.saturating_sub(back.into())),
                    answer: match a {
                        0 => Answer::Ok,
                        1 => Answer::NodeExists,
                        2 => Answer::Stat(Some(NodeStat { ephemeral_owner: SESSION, version: 1 })),
                        3 => Answer::Stat(None),
                        4 => Answer::NoNode,
                        _ => Answer::Failed("x".into()),
                    },
                },
            };
            if matches!(input, Input::Expired | Input::SessionStarted { .. }) {
                delivered = [None, None];
                outstanding_member = None;
            }
            if let Input::MemberAnswered { op, .. } = &input {
                if outstanding_member == Some(op.0) { outstanding_member = None; }
            }
            let out = p.handle(now, input);
            if out.iter().any(|o| matches!(o, Output::Note(Note::WatchFailed { .. }))) {
                delivered = [None, None];
                outstanding_member = None;
            }
            for o in &out {
                match o {
                    Output::Watch { op, .. } | Output::Read { op, .. } => { prop_assert!(op.0 > last_op); last_op = op.0; }
                    Output::Member { op, .. } => {
                        prop_assert!(op.0 > last_op);
                        prop_assert_eq!(outstanding_member, None, "two member writes outstanding: {:?}", out);
                        outstanding_member = Some(op.0);
                        last_op = op.0;
                        member_ops_out += 1;
                    }
                    Output::Deliver(CoordEvent::MembersChanged(s)) => {
                        prop_assert!(delivered[0].is_none_or(|v| s.version > v));
                        delivered[0] = Some(s.version);
                    }
                    Output::Deliver(CoordEvent::JobsChanged(s)) => {
                        prop_assert!(delivered[1].is_none_or(|v| s.version > v));
                        delivered[1] = Some(s.version);
                    }
                    _ => {}
                }
            }
            if let Some(wake) = p.next_wake() {
                let at = wake.max(now);
                let out = p.handle(at, Input::Tick);
                prop_assert!(!out.is_empty() || p.next_wake().is_none_or(|w| w > at), "busy loop at {:?}", at);
                for o in &out {
                    if let Output::Watch { op, .. } | Output::Read { op, .. } | Output::Member { op, .. } = o {
                        last_op = op.0;
                    }
                    if let Output::Member { op, .. } = o { outstanding_member = Some(op.0); }
                }
                now = at;
            }
        }
        let _ = member_ops_out;
    }
}
