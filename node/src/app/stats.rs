//! The figures of this node's subtree (GetAggregates, the console's 统计).

use super::App;
use crate::code::NodeCode;
use crate::error::Error;
use crate::identity::{Action, Identity};
use crate::stats::query::{Answer, GroupBy, Period};

impl App {
    /// The figures of `scope` (this node when `None`, else one of its descendants) over
    /// `period`, broken down by `group_by`. Answers come from stored entries only.
    pub fn aggregates(
        &self,
        who: &Identity,
        scope: Option<NodeCode>,
        period: Period,
        group_by: &[GroupBy],
    ) -> Result<Answer, Error> {
        self.authorize(who, Action::ReadStats)?;
        self.state.stats.answer(scope, period, group_by)
    }
}
