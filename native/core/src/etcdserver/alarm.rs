//! Alarms (etcd's v3alarm): raised and cleared through raft, kept in the backend's meta bucket, and checked
//! at the edge: while NOSPACE is raised, requests that would grow the store are refused.
use parking_lot::Mutex;
use prost::Message;

use crate::mvcc::{KvStore, MvccError, TxnWrite};
use crate::pb::etcdserverpb::{alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType};

const ALARMS_KEY: &[u8] = b"alarms";

#[derive(Default)]
pub struct Alarms {
    list: Mutex<Vec<AlarmMember>>,
}

impl Alarms {
    pub fn load(store: &KvStore) -> Result<Alarms, MvccError> {
        let list = match store.backend().get_meta(ALARMS_KEY)? {
            Some(b) => AlarmResponse::decode(b.as_slice()).map_err(|e| MvccError::Backend(e.to_string()))?.alarms,
            None => Vec::new(),
        };
        Ok(Alarms { list: Mutex::new(list) })
    }

    /// Reads the alarms again (a snapshot replaced the store).
    pub fn reload(&self, store: &KvStore) -> Result<(), MvccError> {
        *self.list.lock() = Alarms::load(store)?.list.into_inner();
        Ok(())
    }

    pub fn list(&self) -> Vec<AlarmMember> {
        self.list.lock().clone()
    }

    /// The alarms of type `t`, or all of them for NONE (etcd's alarm store Get).
    pub fn get(&self, t: i32) -> Vec<AlarmMember> {
        let list = self.list.lock();
        list.iter().filter(|a| t == AlarmType::None as i32 || a.alarm == t).copied().collect()
    }

    pub fn has(&self, t: AlarmType) -> bool {
        self.list.lock().iter().any(|a| a.alarm == t as i32)
    }

    /// Applies an AlarmRequest; returns the alarms the response lists (etcd's applier semantics: GET lists
    /// all, ACTIVATE/DEACTIVATE list the one changed, or nothing when it was a no-op).
    pub fn apply(&self, txn: &mut TxnWrite, r: &AlarmRequest) -> Result<Vec<AlarmMember>, MvccError> {
        let mut list = self.list.lock();
        let m = AlarmMember { member_id: r.member_id, alarm: r.alarm };
        let out = match AlarmAction::try_from(r.action).unwrap_or(AlarmAction::Get) {
            AlarmAction::Get => {
                return Ok(list.iter().filter(|a| r.alarm == 0 || a.alarm == r.alarm).copied().collect());
            }
            AlarmAction::Activate => {
                if list.contains(&m) {
                    return Ok(Vec::new());
                }
                list.push(m);
                vec![m]
            }
            AlarmAction::Deactivate => {
                let Some(at) = list.iter().position(|a| *a == m) else { return Ok(Vec::new()) };
                list.remove(at);
                vec![m]
            }
        };
        let bytes = AlarmResponse { header: None, alarms: list.clone() }.encode_to_vec();
        txn.put_meta(ALARMS_KEY, &bytes)?;
        Ok(out)
    }
}

/// etcd's text for an alarm in Status.errors (the protobuf text form of AlarmMember).
pub fn describe(a: &AlarmMember) -> String {
    // The text form leaves out a zero field, as gogo-protobuf's String() does.
    if a.alarm == 0 {
        return format!("memberID:{} ", a.member_id);
    }
    let name = AlarmType::try_from(a.alarm).map_or("NONE", |t| t.as_str_name());
    format!("memberID:{} alarm:{} ", a.member_id, name)
}
