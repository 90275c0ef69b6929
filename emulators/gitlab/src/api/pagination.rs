//! Offset pagination (§6): slicing, `X-*` headers and `Link`.

use super::*;

pub(super) fn paginate<T>(
    items: Vec<T>,
    page: u64,
    per_page: u64,
    base: &str,
    path: &str,
    mut query: BTreeMap<String, String>,
) -> (Vec<T>, Vec<(String, String)>) {
    let total = items.len() as u64;
    let total_pages = total.div_ceil(per_page).max(1);
    let in_range = page <= total_pages;
    let next = (in_range && page < total_pages).then_some(page + 1);
    let prev = (in_range && page > 1).then_some(page - 1);
    let start = ((page - 1).saturating_mul(per_page)).min(total) as usize;
    let slice: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .collect();
    let show_counts = total <= 10_000;
    query.insert("per_page".to_string(), per_page.to_string());
    let link = |n: u64| {
        let mut q = query.clone();
        q.insert("page".to_string(), n.to_string());
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .finish();
        format!("<{base}{path}?{qs}>")
    };
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("{}; rel=\"prev\"", link(p)));
    }
    if let Some(n) = next {
        links.push(format!("{}; rel=\"next\"", link(n)));
    }
    links.push(format!("{}; rel=\"first\"", link(1)));
    if show_counts {
        links.push(format!("{}; rel=\"last\"", link(total_pages)));
    }
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut h = vec![
        ("Link".to_string(), links.join(", ")),
        ("X-Next-Page".to_string(), opt(next)),
        ("X-Page".to_string(), page.to_string()),
        ("X-Per-Page".to_string(), per_page.to_string()),
        ("X-Prev-Page".to_string(), opt(prev)),
    ];
    if show_counts {
        h.push(("X-Total".to_string(), total.to_string()));
        h.push(("X-Total-Pages".to_string(), total_pages.to_string()));
    }
    (slice, h)
}

/// All request parameters except credentials, plus route params and declared defaults, as
/// GitLab's offset header builder puts them into `Link` (GitLab would include credential
/// parameters too; we leave them out so that `Link` headers never carry secrets).
pub(super) fn link_query(
    req: &ApiRequest<'_>,
    defaults: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut q: BTreeMap<String, String> = req
        .params
        .map
        .iter()
        .filter(|(k, _)| !CREDENTIAL_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.to_query_value()))
        .collect();
    for (k, v) in defaults {
        q.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    q.insert("id".to_string(), req.route.id.clone());
    if let Some(did) = &req.route.deployment_id {
        q.insert("deployment_id".to_string(), did.clone());
    }
    q
}
