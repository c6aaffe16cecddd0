//! The methods of [`Containerizer`](crate::Containerizer), named, for layers configured per
//! method.

use std::fmt;

/// A method of [`Containerizer`](crate::Containerizer) that does work (not `name` or
/// `capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `create`.
    Create,
    /// `start`.
    Start,
    /// `wait`.
    Wait,
    /// `stop`.
    Stop,
    /// `remove`.
    Remove,
    /// `inspect`.
    Inspect,
    /// `exec`.
    Exec,
    /// `logs`.
    Logs,
    /// `list_owned`.
    ListOwned,
    /// `stats` (opening the stream).
    Stats,
    /// `signal`.
    Signal,
    /// `exec_stream` (starting the session).
    ExecStream,
}

impl Method {
    /// Every method, in the order of the trait.
    pub const ALL: [Method; 12] = [
        Method::Create,
        Method::Start,
        Method::Wait,
        Method::Stop,
        Method::Remove,
        Method::Inspect,
        Method::Exec,
        Method::Logs,
        Method::ListOwned,
        Method::Stats,
        Method::Signal,
        Method::ExecStream,
    ];

    /// The method's name (`"list_owned"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Create => "create",
            Method::Start => "start",
            Method::Wait => "wait",
            Method::Stop => "stop",
            Method::Remove => "remove",
            Method::Inspect => "inspect",
            Method::Exec => "exec",
            Method::Logs => "logs",
            Method::ListOwned => "list_owned",
            Method::Stats => "stats",
            Method::Signal => "signal",
            Method::ExecStream => "exec_stream",
        }
    }

    /// Whether calling the method twice has the effect of calling it once, so a retry is safe.
    /// `create` makes a second container, `exec` and `exec_stream` run their command again and
    /// `signal` delivers a second signal: they are not.
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Method::Create | Method::Exec | Method::ExecStream | Method::Signal
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value per method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PerMethod<T>([T; Method::ALL.len()]);

impl<T: Copy> PerMethod<T> {
    pub(crate) fn new(value: T) -> Self {
        PerMethod([value; Method::ALL.len()])
    }

    pub(crate) fn get(&self, method: Method) -> T {
        self.0[method.index()]
    }

    pub(crate) fn set(&mut self, method: Method, value: T) {
        self.0[method.index()] = value;
    }
}
