//! The v2 API's errors (etcd's v2error): a numeric code with a fixed message, a cause, and the store index
//! when it happened. The codes, messages and HTTP statuses are etcd's, which clients match on.

/// `100 Key not found`.
pub const KEY_NOT_FOUND: u32 = 100;
/// `101 Compare failed` (prevValue/prevIndex mismatch).
pub const TEST_FAILED: u32 = 101;
pub const NOT_FILE: u32 = 102;
pub const NOT_DIR: u32 = 104;
pub const NODE_EXIST: u32 = 105;
pub const ROOT_RONLY: u32 = 107;
pub const DIR_NOT_EMPTY: u32 = 108;
pub const UNAUTHORIZED: u32 = 110;
pub const PREV_VALUE_REQUIRED: u32 = 201;
pub const TTL_NAN: u32 = 202;
pub const INDEX_NAN: u32 = 203;
pub const INVALID_FIELD: u32 = 209;
pub const REFRESH_VALUE: u32 = 211;
pub const REFRESH_TTL_REQUIRED: u32 = 212;
pub const RAFT_INTERNAL: u32 = 300;
pub const LEADER_ELECT: u32 = 301;
pub const EVENT_INDEX_CLEARED: u32 = 401;

/// etcd's message for a code ("" for a code etcd does not define).
pub fn message(code: u32) -> &'static str {
    match code {
        100 => "Key not found",
        101 => "Compare failed",
        102 => "Not a file",
        103 => "Reached the max number of peers in the cluster",
        104 => "Not a directory",
        105 => "Key already exists",
        106 => "The prefix of given key is a keyword in etcd",
        107 => "Root is read only",
        108 => "Directory not empty",
        109 => "Peer address has existed",
        110 => "The request requires user authentication",
        200 => "Value is Required in POST form",
        201 => "PrevValue is Required in POST form",
        202 => "The given TTL in POST form is not a number",
        203 => "The given index in POST form is not a number",
        204 => "Value or TTL is required in POST form",
        205 => "The given timeout in POST form is not a number",
        206 => "Name is required in POST form",
        207 => "Index or value is required",
        208 => "Index and value cannot both be specified",
        209 => "Invalid field",
        210 => "Invalid POST form",
        211 => "Value provided on refresh",
        212 => "A TTL must be provided on refresh",
        300 => "Raft Internal Error",
        301 => "During Leader Election",
        400 => "watcher is cleared due to etcd recovery",
        401 => "The event in requested index is outdated and cleared",
        402 => "Standby Internal Error",
        403 => "Invalid active size",
        404 => "Standby remove delay",
        500 => "Client Internal Error",
        _ => "",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Error {
    pub code: u32,
    pub cause: String,
    pub index: u64,
}

impl V2Error {
    pub fn new(code: u32, cause: impl Into<String>, index: u64) -> V2Error {
        V2Error { code, cause: cause.into(), index }
    }

    /// The HTTP status etcd answers this error with.
    pub fn status(&self) -> u16 {
        match self.code {
            KEY_NOT_FOUND => 404,
            NOT_FILE | DIR_NOT_EMPTY => 403,
            UNAUTHORIZED => 401,
            TEST_FAILED | NODE_EXIST => 412,
            RAFT_INTERNAL | LEADER_ELECT => 500,
            _ => 400,
        }
    }

    /// `{"errorCode":N,"message":"...","cause":"...","index":N}` (cause omitted when empty), as etcd writes it.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + self.cause.len());
        out.push_str("{\"errorCode\":");
        out.push_str(&self.code.to_string());
        out.push_str(",\"message\":");
        super::json::push_str(&mut out, message(self.code));
        if !self.cause.is_empty() {
            out.push_str(",\"cause\":");
            super::json::push_str(&mut out, &self.cause);
        }
        out.push_str(",\"index\":");
        out.push_str(&self.index.to_string());
        out.push('}');
        out
    }
}
