//! What one policy concludes from its metric before the target's rules (bounds,
//! cooldowns, suspension, deployments) are applied: it wants more or fewer tasks, computed
//! from a base capacity, or it holds with a reason. Target tracking and step scaling both
//! produce an [`Assessment`]; [`crate::decision`] gates and combines them. Also the
//! helpers both kinds of policy share: window validation and the wording of missing data
//! and metric values.

use std::time::Duration;

use crate::adjustment::Computation;
use crate::error::RuleError;
use crate::outcome::{Direction, NotScaledCode};
use crate::window::{MissingData, Window};

/// A policy's conclusion from its metric alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Assessment {
    /// The policy asks for a change in `direction`.
    Wants {
        direction: Direction,
        computation: Computation,
        /// The scale-out cooldown (for `Out`) or the scale-in cooldown (for `In`).
        cooldown: Duration,
        /// AWS's wording of the cause, with the metric value that triggered it.
        cause: String,
    },
    /// The policy asks for nothing.
    Holds { code: NotScaledCode, detail: String },
}

pub(crate) fn validate_window(field: &str, window: Window) -> Result<(), RuleError> {
    if window.length.is_zero() {
        return Err(RuleError::OutOfRange {
            field: format!("{field}.length"),
            allowed: "a duration above 0",
            found: "0".into(),
        });
    }
    if window.min_samples == 0 {
        return Err(RuleError::OutOfRange {
            field: format!("{field}.minSamples"),
            allowed: "1 or more",
            found: "0".into(),
        });
    }
    Ok(())
}

pub(crate) fn missing_data(metric_name: &str, window: Window, missing: MissingData) -> Assessment {
    Assessment::Holds {
        code: NotScaledCode::MissingData,
        detail: format!(
            "{metric_name} has {} samples in the last {} s, {} needed",
            missing.found,
            window.length.as_secs(),
            missing.needed
        ),
    }
}

/// A metric value as causes show it: at most two decimals, no trailing zeros.
pub(crate) fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}
