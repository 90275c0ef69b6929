//! Offset pagination (spec §6): one stream that follows `X-Next-Page` (or, if a proxy dropped
//! it, the `Link: rel="next"` URL's `page`), so callers never write their own page loop.

use futures::stream::{self, Stream, StreamExt};
use http::HeaderMap;
use serde::de::DeserializeOwned;

use super::client::{Call, GitlabClient, decode};
use super::error::Error;
use super::types::Page;

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
}

fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    header_u64(headers, name).and_then(|v| u32::try_from(v).ok())
}

/// The next page number: `X-Next-Page` when present (empty means "last page"), else the
/// `page` query parameter of the `Link` header's `rel="next"` URL.
pub(crate) fn next_page(headers: &HeaderMap) -> Option<u32> {
    if let Some(v) = headers.get("x-next-page") {
        return v.to_str().ok()?.trim().parse().ok();
    }
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let url = url::Url::parse(url).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
    })
}

/// Build a [`Page`] from decoded items and the pagination headers.
pub(crate) fn page_of<T>(items: Vec<T>, headers: &HeaderMap) -> Page<T> {
    Page {
        items,
        page: header_u32(headers, "x-page"),
        next_page: next_page(headers),
        per_page: header_u32(headers, "x-per-page"),
        total: header_u64(headers, "x-total"),
        total_pages: header_u32(headers, "x-total-pages"),
    }
}

impl GitlabClient {
    /// Fetch one page of a paginated route (`call` without `page`).
    pub(crate) async fn fetch_page<T: DeserializeOwned>(
        &self,
        call: &Call,
        page: u32,
    ) -> Result<Page<T>, Error> {
        let mut call = call.clone();
        call.query.push(("page", page.to_string()));
        let (answer, _) = self.execute(&call).await;
        let answer = answer?;
        let items: Vec<T> = decode(&call.ctx, &answer.body)?;
        Ok(page_of(items, &answer.headers))
    }

    /// Every item of a paginated route from `first_page` on, fetched lazily page by page. The
    /// stream ends after the last page or after the first error (which it yields).
    pub(crate) fn paginate<T>(
        &self,
        call: Call,
        first_page: u32,
    ) -> impl Stream<Item = Result<T, Error>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        let client = self.clone();
        stream::unfold(Some(first_page), move |next| {
            let client = client.clone();
            let call = call.clone();
            async move {
                let page = next?;
                match client.fetch_page::<T>(&call, page).await {
                    // A next page that does not move forward would loop forever: stop there.
                    Ok(p) => {
                        let following = p.next_page.filter(|n| *n > page);
                        Some((p.items.into_iter().map(Ok).collect::<Vec<_>>(), following))
                    }
                    Err(e) => Some((vec![Err(e)], None)),
                }
            }
        })
        .flat_map(stream::iter)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderValue;

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn next_page_table() {
        let cases: &[(&str, Headers, Option<u32>)] = &[
            ("x-next-page", &[("x-next-page", "3")], Some(3)),
            ("last page", &[("x-next-page", "")], None),
            (
                "empty wins over link",
                &[
                    ("x-next-page", ""),
                    (
                        "link",
                        "<https://h/api/v4/projects/1/deployments?page=9>; rel=\"next\"",
                    ),
                ],
                None,
            ),
            (
                "link fallback",
                &[(
                    "link",
                    "<https://h/api/v4/projects/1/deployments?id=1&page=1&per_page=2>; rel=\"prev\", <https://h/api/v4/projects/1/deployments?id=1&page=3&per_page=2>; rel=\"next\", <https://h/x?page=1>; rel=\"first\"",
                )],
                Some(3),
            ),
            (
                "link without next",
                &[("link", "<https://h/x?page=1>; rel=\"first\"")],
                None,
            ),
            ("nothing", &[], None),
            ("garbage", &[("x-next-page", "abc")], None),
        ];
        for (name, headers, want) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in *headers {
                map.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(next_page(&map), *want, "case {name}");
        }
    }

    #[test]
    fn page_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-page", "2"),
            ("x-per-page", "20"),
            ("x-next-page", "3"),
            ("x-total", "45"),
            ("x-total-pages", "3"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let p = page_of(vec![1], &h);
        assert_eq!(
            (p.page, p.next_page, p.per_page, p.total, p.total_pages),
            (Some(2), Some(3), Some(20), Some(45), Some(3))
        );
    }
}
