//! The outbox and the sender's dead letters: the replies' side of the journal.

use rusqlite::{params, OptionalExtension, Row};

use super::{check_found, id_filter, limit_clause, Failure, Store};
use crate::journal::types::{Op, OutboxItem, SenderDeadLetter, Value, PENDING, SENDING, SENT};

const OUTBOX_COLUMNS: &str =
    "id, recipient, body, inbound_wamid, inbound_seq, state, sent_wamid, resends, created_at";
const SENDER_DEAD_LETTER_COLUMNS: &str =
    "id, recipient, body, inbound_wamid, inbound_seq, attempts, reason, error, failed_at";

fn outbox_from(row: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: row.get(0)?,
        recipient: row.get(1)?,
        body: row.get(2)?,
        inbound_wamid: row.get(3)?,
        inbound_seq: row.get(4)?,
        state: row.get(5)?,
        sent_wamid: row.get(6)?,
        resends: row.get(7)?,
        created_at: row.get(8)?,
    })
}

fn sender_dead_letter_from(row: &Row<'_>) -> rusqlite::Result<SenderDeadLetter> {
    Ok(SenderDeadLetter {
        id: row.get(0)?,
        recipient: row.get(1)?,
        body: row.get(2)?,
        inbound_wamid: row.get(3)?,
        inbound_seq: row.get(4)?,
        attempts: row.get(5)?,
        reason: row.get(6)?,
        error: row.get(7)?,
        failed_at: row.get(8)?,
    })
}

impl Store {
    /// The outbox and sender dead-letter operations (`Store::apply` documents each).
    pub(super) fn run_outbox(&mut self, op: Op) -> Result<Value, Failure> {
        match op {
            Op::OutboxAdd {
                recipient,
                body,
                inbound_wamid,
                inbound_seq,
                now,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO outbox (recipient, body, inbound_wamid, inbound_seq, state, created_at, \
                         updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
                    )?
                    .execute(params![recipient, body, inbound_wamid, inbound_seq, now])?;
                Ok(Value::Int(self.conn.last_insert_rowid()))
            }
            Op::OutboxSending { id, now } => {
                match self.outbox_state(id)? {
                    SENT => {
                        return Err(Failure::Invalid(format!(
                            "outbox reply {id} was already sent"
                        )))
                    }
                    SENDING => {
                        self.conn
                            .prepare_cached(
                                "UPDATE outbox SET resends = resends + 1 WHERE id = ?1",
                            )?
                            .execute([id])?;
                        self.conn
                            .prepare_cached(
                                "UPDATE meta SET value = value + 1 WHERE key = 'uncertain_resends'",
                            )?
                            .execute([])?;
                    }
                    _ => {}
                }
                self.conn
                    .prepare_cached("UPDATE outbox SET state = 1, updated_at = ?2 WHERE id = ?1")?
                    .execute(params![id, now])?;
                Ok(Value::None)
            }
            Op::OutboxSent { id, wamid, now } => {
                self.outbox_state(id)?;
                self.conn
                    .prepare_cached("UPDATE outbox SET state = 2, sent_wamid = ?2, updated_at = ?3 WHERE id = ?1")?
                    .execute(params![id, wamid, now])?;
                Ok(Value::None)
            }
            Op::OutboxStatus { wamid } => {
                let n = self
                    .conn
                    .prepare_cached("DELETE FROM outbox WHERE sent_wamid = ?1")?
                    .execute([wamid])?;
                Ok(Value::Bool(n > 0))
            }
            Op::OutboxUnsent => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state < 2 ORDER BY id"
                ))?;
                let rows = stmt
                    .query_map([], outbox_from)?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(Value::Outbox(rows))
            }
            Op::OutboxFail {
                id,
                reason,
                error,
                attempts,
                now,
            } => {
                let moved = self.conn.prepare_cached(
                    "INSERT INTO sender_dead_letters (recipient, body, inbound_wamid, inbound_seq, attempts, \
                     reason, error, failed_at) \
                     SELECT recipient, body, inbound_wamid, inbound_seq, ?2, ?3, ?4, ?5 FROM outbox WHERE id = ?1",
                )?
                .execute(params![id, attempts, reason, error, now])?;
                if moved == 0 {
                    return Err(Failure::Invalid(format!("no outbox reply has id {id}")));
                }
                let dead_id = self.conn.last_insert_rowid();
                self.conn
                    .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                    .execute([id])?;
                Ok(Value::Int(dead_id))
            }
            Op::ListSenderDeadLetters { limit } => Ok(Value::SenderDeadLetters(
                self.sender_dead_letters(&None, limit)?,
            )),
            Op::ReplaySenderDeadLetters { ids, now } => {
                let dead = self.sender_dead_letters(&ids, None)?;
                check_found(&ids, dead.iter().map(|d| d.id), "sender dead letter")?;
                let mut replayed = Vec::with_capacity(dead.len());
                for d in dead {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO outbox (recipient, body, inbound_wamid, inbound_seq, state, created_at, \
                             updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
                        )?
                        .execute(params![d.recipient, d.body, d.inbound_wamid, d.inbound_seq, now])?;
                    let id = self.conn.last_insert_rowid();
                    self.conn
                        .prepare_cached("DELETE FROM sender_dead_letters WHERE id = ?1")?
                        .execute([d.id])?;
                    replayed.push(OutboxItem {
                        id,
                        recipient: d.recipient,
                        body: d.body,
                        inbound_wamid: d.inbound_wamid,
                        inbound_seq: d.inbound_seq,
                        state: PENDING,
                        sent_wamid: None,
                        resends: 0,
                        created_at: now,
                    });
                }
                Ok(Value::Outbox(replayed))
            }
            Op::PurgeSenderDeadLetters { ids } => {
                let n = self.conn.execute(
                    &format!("DELETE FROM sender_dead_letters{}", id_filter(&ids)),
                    [],
                )?;
                Ok(Value::Int(n as i64))
            }
            other => unreachable!("not an outbox operation: {other:?}"),
        }
    }

    fn outbox_state(&self, id: i64) -> Result<i64, Failure> {
        self.conn
            .prepare_cached("SELECT state FROM outbox WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?
            .ok_or_else(|| Failure::Invalid(format!("no outbox reply has id {id}")))
    }

    fn sender_dead_letters(
        &self,
        ids: &Option<Vec<i64>>,
        limit: Option<u64>,
    ) -> Result<Vec<SenderDeadLetter>, Failure> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SENDER_DEAD_LETTER_COLUMNS} FROM sender_dead_letters{} ORDER BY id{}",
            id_filter(ids),
            limit_clause(limit)
        ))?;
        let rows = stmt
            .query_map([], sender_dead_letter_from)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
