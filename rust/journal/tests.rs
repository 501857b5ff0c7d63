//! The journal without Python: operations, reopening, refusals and group commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::JournalError;
use super::schema::CURRENT_VERSION;
use super::types::{Message, Op, Value, PENDING, SENDING, SENT};
use super::writer::{Journal, JournalOptions};
use crate::dispatch::entry::Payload;

/// A fresh directory per test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluiceway-journal-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self) -> String {
        self.0.join("journal.db").to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &str) -> Journal {
    Journal::open(path, JournalOptions::default()).unwrap()
}

fn insert(first_seq: u64, payloads: &[&[u8]]) -> Op {
    Op::Insert {
        first_seq,
        priority: 1,
        enqueued_at: 100.0,
        ordering_key: None,
        payloads: payloads.iter().map(|p| Payload::whole(p)).collect(),
    }
}

fn recover(journal: &Journal) -> (u64, Vec<Message>) {
    match journal.call(Op::Recover).unwrap() {
        Value::Recovery(r) => (r.next_seq, r.messages),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn messages_survive_reopen_with_dispatch_and_completion_applied() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    journal.call(insert(10, &[b"a", b"b", b"c", b"d"])).unwrap();
    assert_eq!(
        journal.call(Op::Dispatch(vec![(10, 12)])).unwrap(),
        Value::Int(3)
    );
    assert_eq!(
        journal
            .call(Op::Complete(vec![(10, 10), (12, 12)]))
            .unwrap(),
        Value::Int(2)
    );
    journal.call(Op::Retry(vec![(11, 5, 123.5)])).unwrap();
    drop(journal);

    let journal = open(&dir.file());
    let (next_seq, messages) = recover(&journal);
    assert_eq!(next_seq, 14);
    let summary: Vec<_> = messages
        .iter()
        .map(|m| (m.seq, m.attempt, m.dispatched, m.not_before))
        .collect();
    assert_eq!(
        summary,
        vec![(11, 5, false, Some(123.5)), (13, 0, false, None)]
    );
    assert_eq!(messages[0].payload, b"b");
}

#[test]
fn a_reused_seq_is_refused_alone_and_the_rest_of_the_batch_commits() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    journal.call(insert(0, &[b"a"])).unwrap();
    let bad = journal.submit(insert(0, &[b"again"]), true).unwrap();
    let good = journal.submit(insert(1, &[b"b"]), true).unwrap();
    assert!(matches!(journal.wait(bad), Err(JournalError::Invalid(_))));
    assert_eq!(journal.wait(good).unwrap(), Value::None);
    let (_, messages) = recover(&journal);
    assert_eq!(
        messages
            .iter()
            .map(|m| m.payload.clone())
            .collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn dead_letters_replay_with_fresh_seqs_and_purge() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    journal.call(insert(0, &[b"a", b"b"])).unwrap();
    journal.call(Op::Dispatch(vec![(0, 1)])).unwrap();
    let Value::Int(id) = journal
        .call(Op::DeadLetter {
            seq: 0,
            reason: "max_attempts".into(),
            error: "E".into(),
            traceback: "T".into(),
            now: 5.0,
        })
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        journal.call(Op::DeadLetter {
            seq: 0,
            reason: "r".into(),
            error: "".into(),
            traceback: "".into(),
            now: 5.0
        }),
        Err(JournalError::Invalid(_))
    ));
    let Value::DeadLetters(dead) = journal.call(Op::ListDeadLetters { limit: None }).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (dead[0].id, dead[0].attempts, dead[0].payload.as_slice()),
        (id, 1, &b"a"[..])
    );
    let Value::Messages(replayed) = journal
        .call(Op::ReplayDeadLetters {
            ids: Some(vec![id]),
            first_seq: None,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((replayed[0].seq, replayed[0].attempt), (2, 0));
    assert_eq!(
        journal.call(Op::PurgeDeadLetters { ids: None }).unwrap(),
        Value::Int(0)
    );
    let (next_seq, messages) = recover(&journal);
    assert_eq!((next_seq, messages.len()), (3, 2));
}

fn webhook(journal: &Journal, wamid: &str, seq: u64, now: f64) -> bool {
    let message = Message {
        seq,
        priority: 0,
        enqueued_at: now,
        ordering_key: Some("+1555".into()),
        attempt: 0,
        dispatched: false,
        not_before: None,
        payload: b"m".to_vec(),
    };
    match journal
        .call(Op::AcceptWebhook {
            wamid: wamid.into(),
            message,
            now,
        })
        .unwrap()
    {
        Value::Bool(duplicate) => duplicate,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_webhook_is_accepted_once_until_its_wamid_expires() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    assert!(!webhook(&journal, "w1", 0, 0.0));
    assert!(webhook(&journal, "w1", 1, 10.0));
    assert!(
        webhook(&journal, "w1", 0, 11.0),
        "a duplicate is one even with a used seq"
    );
    let week = 7.0 * 86400.0;
    assert_eq!(
        journal
            .call(Op::Expire {
                now: week - 1.0,
                limit: 100
            })
            .unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        journal
            .call(Op::Expire {
                now: week + 1.0,
                limit: 100
            })
            .unwrap(),
        Value::Int(1)
    );
    assert!(!webhook(&journal, "w1", 1, week + 2.0));
    assert_eq!(recover(&journal).1.len(), 2);
}

#[test]
fn the_dedup_set_keeps_only_the_newest_max_entries() {
    let dir = Scratch::new();
    let journal = Journal::open(
        &dir.file(),
        JournalOptions {
            dedup_max_entries: 2,
            ..Default::default()
        },
    )
    .unwrap();
    for (i, wamid) in ["a", "b", "c"].iter().enumerate() {
        assert!(!webhook(&journal, wamid, i as u64, i as f64));
    }
    let Value::Stats(stats) = journal.call(Op::Stats).unwrap() else {
        panic!()
    };
    assert_eq!(stats.dedup, 2);
    assert!(
        !webhook(&journal, "a", 3, 4.0),
        "the oldest wamid was forgotten"
    );
    assert!(webhook(&journal, "c", 4, 5.0));
}

#[test]
fn outbox_moves_through_its_states_and_counts_uncertain_resends() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    let add = |recipient: &str| match journal
        .call(Op::OutboxAdd {
            recipient: recipient.into(),
            body: b"hi".to_vec(),
            inbound_wamid: Some("in".into()),
            inbound_seq: Some(3),
            now: 1.0,
        })
        .unwrap()
    {
        Value::Int(id) => id,
        other => panic!("unexpected {other:?}"),
    };
    let (a, b, c) = (add("a"), add("b"), add("c"));
    journal.call(Op::OutboxSending { id: a, now: 2.0 }).unwrap();
    journal
        .call(Op::OutboxSent {
            id: a,
            wamid: "out-a".into(),
            now: 3.0,
        })
        .unwrap();
    journal.call(Op::OutboxSending { id: b, now: 2.0 }).unwrap();
    drop(journal);

    let journal = open(&dir.file());
    let Value::Outbox(unsent) = journal.call(Op::OutboxUnsent).unwrap() else {
        panic!()
    };
    assert_eq!(
        unsent.iter().map(|o| (o.id, o.state)).collect::<Vec<_>>(),
        vec![(b, SENDING), (c, PENDING)]
    );
    journal.call(Op::OutboxSending { id: b, now: 4.0 }).unwrap();
    assert!(matches!(
        journal.call(Op::OutboxSending { id: a, now: 4.0 }),
        Err(JournalError::Invalid(_))
    ));
    assert_eq!(
        journal
            .call(Op::OutboxStatus {
                wamid: "out-a".into()
            })
            .unwrap(),
        Value::Bool(true)
    );
    let Value::Int(dead) = journal
        .call(Op::OutboxFail {
            id: c,
            reason: "rejected".into(),
            error: "400".into(),
            attempts: 3,
            now: 5.0,
        })
        .unwrap()
    else {
        panic!()
    };
    let Value::Stats(stats) = journal.call(Op::Stats).unwrap() else {
        panic!()
    };
    assert_eq!(
        (
            stats.outbox,
            stats.uncertain_resends,
            stats.sender_dead_letters
        ),
        (1, 1, 1)
    );
    let Value::Outbox(replayed) = journal
        .call(Op::ReplaySenderDeadLetters {
            ids: Some(vec![dead]),
            now: 6.0,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (replayed[0].recipient.as_str(), replayed[0].state),
        ("c", PENDING)
    );
    assert_ne!(replayed[0].state, SENT);
}

#[test]
fn a_second_open_is_refused_naming_the_holder() {
    let dir = Scratch::new();
    let _first = open(&dir.file());
    match Journal::open(&dir.file(), JournalOptions::default()) {
        Err(JournalError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_kept() {
    let dir = Scratch::new();
    std::fs::write(dir.file(), b"hello, this is not sqlite at all").unwrap();
    let error = Journal::open(&dir.file(), JournalOptions::default())
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("not a SQLite database"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(dir.file()).unwrap(),
        b"hello, this is not sqlite at all"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = Scratch::new();
    drop(open(&dir.file()));
    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [CURRENT_VERSION + 1],
    )
    .unwrap();
    drop(conn);
    let error = Journal::open(&dir.file(), JournalOptions::default())
        .err()
        .unwrap();
    assert!(error.to_string().contains("newer"), "{error}");
}

#[test]
fn tickets_commit_in_order_and_drain_reports_unwaited_results() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    let tickets: Vec<u64> = (0..50)
        .map(|i| journal.submit(insert(i, &[b"x"]), false).unwrap())
        .collect();
    assert!(tickets.windows(2).all(|w| w[0] < w[1]));
    let last = journal.submit(Op::Stats, false).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut results = Vec::new();
    loop {
        let (committed, mut drained, stopped) = journal.drain();
        assert!(!stopped);
        results.append(&mut drained);
        if committed >= last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not committed in time"
        );
        std::thread::yield_now();
    }
    // Inserts report nothing; only the stats ticket has a result.
    assert_eq!(results.len(), 1);
    assert!(matches!(&results[0], (t, Ok(Value::Stats(s))) if *t == last && s.pending == 50));
}

#[test]
fn a_closed_journal_refuses_work_and_releases_the_file() {
    let dir = Scratch::new();
    let journal = open(&dir.file());
    journal.close();
    assert!(matches!(
        journal.submit(Op::Stats, true),
        Err(JournalError::Closed { .. })
    ));
    drop(open(&dir.file()));
}

#[test]
fn queued_operations_share_one_transaction_up_to_max_batch_ops() {
    let dir = Scratch::new();
    // The writer gathers for up to a minute after the first operation, or until 100 are queued.
    let options = JournalOptions {
        max_batch_ops: 100,
        max_wait: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let journal = Journal::open(&dir.file(), options).unwrap();
    let tickets: Vec<u64> = (0..250)
        .map(|i| journal.submit(insert(i, &[b"x"]), true).unwrap())
        .collect();
    for ticket in &tickets[..200] {
        journal.wait(*ticket).unwrap();
    }
    // 200 operations, two full transactions; the last 50 wait for 50 more (or the minute).
    let stats = journal.submit(Op::Stats, true).unwrap();
    for i in 0..49 {
        journal.submit(Op::Dispatch(vec![(i, i)]), false).unwrap();
    }
    let Value::Stats(stats) = journal.wait(stats).unwrap() else {
        panic!()
    };
    assert_eq!((stats.transactions, stats.pending), (2, 250));
}

#[test]
fn a_new_journal_and_its_wal_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new();
    let journal = open(&dir.file());
    journal.call(insert(0, &[b"secret"])).unwrap();
    for suffix in ["", "-wal"] {
        let mode = std::fs::metadata(format!("{}{suffix}", dir.file()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "journal{suffix}");
    }
}
