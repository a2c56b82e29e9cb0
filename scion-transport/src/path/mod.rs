//! The pure core of path-aware transport: path model, preference, policy and the selector
//! state machine. Nothing in here touches sockets, async runtimes, scion-proto or the clock;
//! time is always an argument (see STYLE.md).

pub mod model;
pub mod policy;
pub mod preference;
mod probe;
pub mod selector;

pub use model::{AsHop, DataplaneShape, PathFingerprint, PathInfo, PathInfoError, PathInterface};
pub use policy::{Acl, AclEntry, HopPredicate, PathPolicy, PolicyError, PolicyReject, Sequence};
pub use preference::{
    PathMetrics, PathPreference, PreferenceError, PreferenceKey, SwitchMargin, Verdict,
};
pub use selector::{
    CandidateView, PathState, Selector, SelectorAction, SelectorConfig, SelectorConfigError,
    SwitchCause,
};
