//! etcd's client-visible errors: the exact message and gRPC code of each (etcd's rpctypes).
use crate::mvcc::MvccError;

/// gRPC status codes we use (numbering is gRPC's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    InvalidArgument = 3,
    PermissionDenied = 7,
    Unauthenticated = 16,
    NotFound = 5,
    FailedPrecondition = 9,
    ResourceExhausted = 8,
    OutOfRange = 11,
    Unavailable = 14,
    Internal = 13,
    DataLoss = 15,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdError {
    EmptyKey,
    KeyNotFound,
    ValueProvided,
    LeaseProvided,
    TooManyOps,
    DuplicateKey,
    InvalidSortOption,
    Compacted,
    FutureRev,
    LeaseNotFound,
    LeaseExists,
    LeaseTtlTooLarge,
    RequestTooLarge,
    NoSpace,
    Corrupt,
    NotLeader,
    BadLeaderTransferee,
    MemberNotFound,
    MemberNotLearner,
    /// The id was removed from the cluster; gRPC shows it as "member not found", as etcd does.
    MemberRemoved,
    MemberExists,
    PeerUrlExists,
    MemberBadUrls,
    TooManyLearners,
    LearnerNotReady,
    NotEnoughStartedMembers,
    Unhealthy,
    NotSupportedForLearner,
    LeaderTransferTimeout,
    Timeout,
    NoLeader,
    Stopped,
    RootUserNotExist,
    RootRoleNotExist,
    UserAlreadyExist,
    UserEmpty,
    UserNotFound,
    RoleAlreadyExist,
    RoleNotFound,
    RoleEmpty,
    AuthFailed,
    PermissionDenied,
    RoleNotGranted,
    PermissionNotGranted,
    PermissionNotGiven,
    AuthNotEnabled,
    InvalidAuthToken,
    InvalidAuthMgmt,
    AuthOldRevision,
    Internal(String),
}

impl EtcdError {
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey | InvalidSortOption
            | RequestTooLarge => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseNotFound => Code::NotFound,
            LeaseExists => Code::FailedPrecondition,
            NoSpace => Code::ResourceExhausted,
            Corrupt => Code::DataLoss,
            NotLeader => Code::FailedPrecondition,
            BadLeaderTransferee => Code::FailedPrecondition,
            MemberNotFound | MemberRemoved => Code::NotFound,
            MemberNotLearner
            | MemberExists
            | PeerUrlExists
            | TooManyLearners
            | LearnerNotReady
            | NotEnoughStartedMembers => Code::FailedPrecondition,
            MemberBadUrls => Code::InvalidArgument,
            Timeout | NoLeader | Stopped | Unhealthy | NotSupportedForLearner | LeaderTransferTimeout => {
                Code::Unavailable
            }
            RootUserNotExist | RootRoleNotExist | UserAlreadyExist | UserNotFound | RoleAlreadyExist | RoleNotFound
            | RoleNotGranted | PermissionNotGranted | AuthNotEnabled => Code::FailedPrecondition,
            UserEmpty | RoleEmpty | AuthFailed | PermissionNotGiven | InvalidAuthMgmt | AuthOldRevision => {
                Code::InvalidArgument
            }
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            Internal(_) => Code::Internal,
        }
    }

    pub fn message(&self) -> String {
        use EtcdError::*;
        let m = match self {
            EmptyKey => "etcdserver: key is not provided",
            KeyNotFound => "etcdserver: key not found",
            ValueProvided => "etcdserver: value is provided",
            LeaseProvided => "etcdserver: lease is provided",
            TooManyOps => "etcdserver: too many operations in txn request",
            DuplicateKey => "etcdserver: duplicate key given in txn request",
            InvalidSortOption => "etcdserver: invalid sort option",
            Compacted => "etcdserver: mvcc: required revision has been compacted",
            FutureRev => "etcdserver: mvcc: required revision is a future revision",
            LeaseNotFound => "etcdserver: requested lease not found",
            LeaseExists => "etcdserver: lease already exists",
            LeaseTtlTooLarge => "etcdserver: too large lease TTL",
            RequestTooLarge => "etcdserver: request is too large",
            NoSpace => "etcdserver: mvcc: database space exceeded",
            Corrupt => "etcdserver: corrupt cluster",
            NotLeader => "etcdserver: not leader",
            BadLeaderTransferee => "etcdserver: bad leader transferee",
            MemberNotFound | MemberRemoved => "etcdserver: member not found",
            MemberNotLearner => "etcdserver: can only promote a learner member",
            MemberExists => "etcdserver: member ID already exist",
            PeerUrlExists => "etcdserver: Peer URLs already exists",
            MemberBadUrls => "etcdserver: given member URLs are invalid",
            TooManyLearners => "etcdserver: too many learner members in cluster",
            LearnerNotReady => "etcdserver: can only promote a learner member which is in sync with leader",
            NotEnoughStartedMembers => "etcdserver: re-configuration failed due to not enough started members",
            Unhealthy => "etcdserver: unhealthy cluster",
            NotSupportedForLearner => "etcdserver: rpc not supported for learner",
            LeaderTransferTimeout => "etcdserver: request timed out, leader transfer took too long",
            Timeout => "etcdserver: request timed out",
            NoLeader => "etcdserver: no leader",
            Stopped => "etcdserver: server stopped",
            RootUserNotExist => "etcdserver: root user does not exist",
            RootRoleNotExist => "etcdserver: root user does not have root role",
            UserAlreadyExist => "etcdserver: user name already exists",
            UserEmpty => "etcdserver: user name is empty",
            UserNotFound => "etcdserver: user name not found",
            RoleAlreadyExist => "etcdserver: role name already exists",
            RoleNotFound => "etcdserver: role name not found",
            RoleEmpty => "etcdserver: role name is empty",
            AuthFailed => "etcdserver: authentication failed, invalid user ID or password",
            PermissionDenied => "etcdserver: permission denied",
            RoleNotGranted => "etcdserver: role is not granted to the user",
            PermissionNotGranted => "etcdserver: permission is not granted to the role",
            PermissionNotGiven => "etcdserver: permission not given",
            AuthNotEnabled => "etcdserver: authentication is not enabled",
            InvalidAuthToken => "etcdserver: invalid auth token",
            InvalidAuthMgmt => "etcdserver: invalid auth management",
            AuthOldRevision => "etcdserver: revision of auth store is old",
            Internal(s) => return format!("etcdserver: {s}"),
        };
        m.to_string()
    }
}

impl EtcdError {
    /// The error whose message is `m` (a peer's answer), or `Internal` with it.
    pub fn from_message(m: &str) -> EtcdError {
        use EtcdError::*;
        let known = [
            LeaseNotFound,
            NotLeader,
            NoLeader,
            MemberNotFound,
            MemberNotLearner,
            LearnerNotReady,
            NotEnoughStartedMembers,
            Unhealthy,
            TooManyLearners,
            PeerUrlExists,
            MemberExists,
            Timeout,
            Stopped,
            UserEmpty,
            PermissionDenied,
            InvalidAuthToken,
            AuthOldRevision,
        ];
        known
            .into_iter()
            .find(|e| e.message() == m)
            .unwrap_or_else(|| Internal(m.strip_prefix("etcdserver: ").unwrap_or(m).to_string()))
    }
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for EtcdError {}

impl From<MvccError> for EtcdError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::Compacted => EtcdError::Compacted,
            MvccError::FutureRev => EtcdError::FutureRev,
            MvccError::Backend(s) => EtcdError::Internal(s),
        }
    }
}
