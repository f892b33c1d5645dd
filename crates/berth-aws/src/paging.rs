//! `nextToken`/`maxResults` pagination over a listing berth computes whole: the token
//! is the offset of the next item, so a caller walks the same ordered list page by page.

use crate::protocol::AwsError;

/// One page of `items`, and the token of the next one if any remains.
///
/// `max` is the caller's page size (`None`: `default_max`); it must lie in
/// `1..=limit`. A token berth did not hand out is refused naming `token_field`.
pub fn page<T>(
    items: Vec<T>,
    token: Option<&str>,
    max: Option<i64>,
    default_max: usize,
    limit: usize,
    token_field: &str,
    max_field: &str,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let start = match token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("berth-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                AwsError::invalid(format!(
                    "{token_field}: not a token berth handed out ({t:?}); pass the previous answer's {token_field}"
                ))
            })?,
    };
    let size = match max {
        None => default_max,
        Some(m) if m >= 1 && m as usize <= limit => m as usize,
        Some(m) => {
            return Err(AwsError::invalid(format!(
                "{max_field}: must be between 1 and {limit}, got {m}"
            )))
        }
    };
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + size < total).then(|| format!("berth-{}", start + size));
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_the_list_and_bad_input_is_refused() {
        let items: Vec<u32> = (0..5).collect();
        let (p, next) = page(
            items.clone(),
            None,
            Some(2),
            100,
            100,
            "nextToken",
            "maxResults",
        )
        .unwrap();
        assert_eq!(p, vec![0, 1]);
        let (p, next) = page(
            items.clone(),
            next.as_deref(),
            Some(2),
            100,
            100,
            "nextToken",
            "maxResults",
        )
        .unwrap();
        assert_eq!(p, vec![2, 3]);
        let (p, next) = page(
            items.clone(),
            next.as_deref(),
            Some(2),
            100,
            100,
            "nextToken",
            "maxResults",
        )
        .unwrap();
        assert_eq!((p, next), (vec![4], None));
        let e = page(
            items.clone(),
            Some("x"),
            None,
            100,
            100,
            "nextToken",
            "maxResults",
        )
        .unwrap_err();
        assert!(e.message.starts_with("nextToken:"), "{e}");
        let e = page(items, None, Some(0), 100, 100, "nextToken", "maxResults").unwrap_err();
        assert!(e.message.starts_with("maxResults:"), "{e}");
    }
}
