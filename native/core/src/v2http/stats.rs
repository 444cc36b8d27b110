//! `/v2/stats/{self,leader,store}` in etcd's JSON shapes (its v2stats and the v2 store's counters).
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};

use crate::etcdserver::EtcdServer;
use crate::v2store::json::{push_str, rfc3339_nano};
use crate::v3rpc::http::json_response;

fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5s`, `150ms`, `2µs`, `0s`.
pub fn go_duration(nanos: u128) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128| {
        let whole = v / unit;
        let rest = format!("{:0width$}", v % unit, width = unit.ilog10() as usize);
        let rest = rest.trim_end_matches('0');
        if rest.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{rest}")
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", frac(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", frac(nanos, 1_000_000));
    }
    let (h, rem) = (nanos / 3_600_000_000_000, nanos % 3_600_000_000_000);
    let (m, s) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(s, 1_000_000_000));
    out.push('s');
    out
}

/// This member: name, id, raft state, start time, its leader and since when, append requests received and
/// sent (etcd's field order).
pub async fn self_stats(State(server): State<Arc<EtcdServer>>) -> Response<Body> {
    let st = &server.raft_stats;
    let (leader, since) = *st.leader_since.lock();
    let state = if server.is_leader() { "StateLeader" } else { "StateFollower" };
    let uptime = SystemTime::now().duration_since(since).unwrap_or_default().as_nanos();
    let mut out = String::from("{\"name\":");
    push_str(&mut out, &server.cfg.name);
    out.push_str(&format!(",\"id\":\"{:x}\",\"state\":\"{state}\",\"startTime\":", server.member_id()));
    push_str(&mut out, &rfc3339_nano(unix_nanos(st.start_time)));
    out.push_str(&format!(
        ",\"leaderInfo\":{{\"leader\":\"{leader:x}\",\"uptime\":\"{}\",\"startTime\":",
        go_duration(uptime)
    ));
    push_str(&mut out, &rfc3339_nano(unix_nanos(since)));
    out.push_str(&format!(
        "}},\"recvAppendRequestCnt\":{},\"sendAppendRequestCnt\":{}}}",
        st.recv_append.load(Ordering::Relaxed),
        st.send_append.load(Ordering::Relaxed),
    ));
    json_response(StatusCode::OK, out)
}

/// On the leader: each follower's append outcomes. Elsewhere 403 "not current leader", as etcd answers.
pub async fn leader_stats(State(server): State<Arc<EtcdServer>>) -> Response<Body> {
    if !server.is_leader() {
        return json_response(StatusCode::FORBIDDEN, "{\"message\":\"not current leader\"}");
    }
    let mut out = format!("{{\"leader\":\"{:x}\",\"followers\":{{", server.member_id());
    let followers = server.raft_stats.followers.lock();
    let ids = server.cluster.members().into_iter().map(|m| m.id).filter(|&id| id != server.member_id());
    for (i, id) in ids.enumerate() {
        let c = followers.get(&id).copied().unwrap_or_default();
        if i > 0 {
            out.push(',');
        }
        // Append latency is not measured here; etcd's fields are kept so clients parse the shape.
        out.push_str(&format!(
            "\"{id:x}\":{{\"latency\":{{\"current\":0,\"average\":0,\"standardDeviation\":0,\"minimum\":0,\"maximum\":0}},\"counts\":{{\"fail\":{},\"success\":{}}}}}",
            c.fail, c.success
        ));
    }
    out.push_str("}}");
    json_response(StatusCode::OK, out)
}

/// The v2 store's operation counters.
pub async fn store_stats(State(server): State<Arc<EtcdServer>>) -> Response<Body> {
    let body = {
        let store = server.v2.lock();
        store.stats.to_json(store.hub.count())
    };
    json_response(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(150_000_000), "150ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_723_000_000_001), "1h2m3.000000001s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
    }
}
