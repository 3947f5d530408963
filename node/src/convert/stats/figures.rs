//! Figures ⇄ `pb::Figures`, field by field (destructured, so a new field cannot be missed).

use fengqiao_proto::v1 as pb;

use crate::code::Tier;
use crate::domain::DomainError;
use crate::stats::Figures;
use crate::stats::figures::ratio;

fn tier_to_proto(t: Tier) -> pb::Tier {
    match t {
        Tier::Province => pb::Tier::Province,
        Tier::City => pb::Tier::City,
        Tier::County => pb::Tier::County,
        Tier::Township => pb::Tier::Township,
        Tier::Village => pb::Tier::Village,
    }
}

fn tier_from_proto(v: i32) -> Result<Tier, DomainError> {
    let bad = |m: &str| DomainError::invalid("resolved_by_tier.tier", m.to_owned());
    match pb::Tier::try_from(v).map_err(|_| bad("unknown value"))? {
        pb::Tier::Unspecified => Err(bad("is required (UNSPECIFIED given)")),
        pb::Tier::Province => Ok(Tier::Province),
        pb::Tier::City => Ok(Tier::City),
        pb::Tier::County => Ok(Tier::County),
        pb::Tier::Township => Ok(Tier::Township),
        pb::Tier::Village => Ok(Tier::Village),
    }
}

/// The wire form of `f`; `derived` also fills rates, means and shares (answers only).
pub fn figures_to_proto(f: &Figures, derived: bool) -> pb::Figures {
    let Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        resolved_province: _,
        resolved_city: _,
        resolved_county: _,
        resolved_township: _,
        resolved_village: _,
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
    } = *f;
    let d = |v: f64| if derived { v } else { 0.0 };
    pb::Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        resolved_by_tier: f
            .resolved_by_tier()
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(t, n)| pb::TierCount {
                tier: tier_to_proto(t) as i32,
                resolved: n,
                share: d(ratio(n, resolved)),
            })
            .collect(),
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
        success_rate: d(f.success_rate()),
        mean_days_to_resolution: d(f.mean_days_to_resolution()),
        satisfaction_mean: d(f.satisfaction_mean()),
        settled_locally_share: d(f.settled_locally_share()),
    }
}

/// Figures from a contribution; derived fields are ignored.
pub fn figures_from_proto(p: pb::Figures) -> Result<Figures, DomainError> {
    let pb::Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        resolved_by_tier,
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
        success_rate: _,
        mean_days_to_resolution: _,
        satisfaction_mean: _,
        settled_locally_share: _,
    } = p;
    let mut f = Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
        ..Figures::default()
    };
    for pb::TierCount {
        tier,
        resolved,
        share: _,
    } in resolved_by_tier
    {
        let slot = match tier_from_proto(tier)? {
            Tier::Province => &mut f.resolved_province,
            Tier::City => &mut f.resolved_city,
            Tier::County => &mut f.resolved_county,
            Tier::Township => &mut f.resolved_township,
            Tier::Village => &mut f.resolved_village,
        };
        *slot = slot.wrapping_add(resolved);
    }
    Ok(f)
}
