//! Model-id normalisation: from whatever a provider, a gateway or a log wrote (`us.anthropic.
//! claude-sonnet-4-5-20250929-v1:0`, `vertex_ai/claude-opus-4-1@20250805`, `claude-opus-4.6`,
//! `claude-opus-4-6[1m]`) to the candidate keys the catalog is searched with, keeping what the
//! id says about price (platform, deployment, fast mode).

use crate::context::{Deployment, Platform};

/// What an id says besides the model itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// Keys to look up exactly, most specific first; the last one is also used for the
    /// boundary-aware prefix match.
    pub candidates: Vec<String>,
    pub platform: Option<Platform>,
    pub deployment: Option<Deployment>,
    pub fast: bool,
}

/// The form every catalog key and every query is compared in: lower case, with `.`, `@` and
/// `:` folded to `-` (OpenRouter writes `claude-opus-4.6`, Vertex `…@20250805`).
pub(crate) fn canonical(id: &str) -> String {
    id.trim()
        .chars()
        .map(|c| match c {
            '.' | '@' | ':' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

const BEDROCK_PROFILES: &[(&str, Deployment)] = &[
    ("us-gov.", Deployment::GovCloud),
    ("global.", Deployment::Global),
    ("us.", Deployment::Regional),
    ("eu.", Deployment::Regional),
    ("apac.", Deployment::Regional),
    ("jp.", Deployment::Regional),
    ("au.", Deployment::Regional),
    ("ca.", Deployment::Regional),
    ("uk.", Deployment::Regional),
];

const BEDROCK_VENDORS: &[&str] = &[
    "anthropic.",
    "amazon.",
    "meta.",
    "mistral.",
    "deepseek.",
    "openai.",
    "cohere.",
    "ai21.",
];

fn is_aws_region(s: &str) -> bool {
    // us-east-1, eu-central-2, us-gov-west-1, ap-southeast-2
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn region_deployment(region: &str) -> Deployment {
    if region.starts_with("us-gov-") {
        Deployment::GovCloud
    } else {
        Deployment::Regional
    }
}

/// Strips a Bedrock version suffix (`-v1:0`, `-v2:0`, `-v1`).
fn strip_version_suffix(s: &str) -> Option<&str> {
    let i = s.rfind("-v")?;
    let tail = &s[i + 2..];
    let (major, minor) = match tail.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (tail, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && minor.is_none_or(digits) && i > 0).then(|| &s[..i])
}

/// Swaps Claude's old and new word orders: `claude-4-sonnet-20250514` ⇄ `claude-sonnet-4-20250514`.
fn swap_claude_word_order(key: &str) -> Option<String> {
    let rest = key.strip_prefix("claude-")?;
    let segs: Vec<&str> = rest.split('-').collect();
    let is_family = |s: &str| matches!(s, "opus" | "sonnet" | "haiku");
    let is_ver = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    // Old order: version segments then family.
    let nver = segs.iter().take_while(|s| is_ver(s)).count();
    if (1..=2).contains(&nver) && segs.get(nver).is_some_and(|s| is_family(s)) {
        let mut out = vec![segs[nver]];
        out.extend(&segs[..nver]);
        out.extend(&segs[nver + 1..]);
        return Some(format!("claude-{}", out.join("-")));
    }
    // New order: family then version segments.
    if segs.first().is_some_and(|s| is_family(s)) {
        let nver = segs[1..].iter().take_while(|s| is_ver(s)).count().min(2);
        if nver >= 1 {
            let mut out: Vec<&str> = segs[1..=nver].to_vec();
            out.push(segs[0]);
            out.extend(&segs[nver + 1..]);
            return Some(format!("claude-{}", out.join("-")));
        }
    }
    None
}

pub(crate) fn normalize(raw: &str) -> Normalized {
    let mut n = Normalized::default();
    let mut s = raw.trim().to_ascii_lowercase();
    let push = |n: &mut Normalized, s: &str| {
        let c = canonical(s);
        if !c.is_empty() && !n.candidates.contains(&c) {
            n.candidates.push(c);
        }
    };
    push(&mut n, &s);

    // Claude Code display suffixes: `[1m]` (1M context window) says nothing about price.
    if s.ends_with(']')
        && let Some(i) = s.rfind('[')
    {
        s.truncate(i);
        push(&mut n, &s);
    }

    // ARNs: arn:aws:bedrock:REGION:ACCOUNT:foundation-model/ID or inference-profile/ID.
    if s.starts_with("arn:") {
        let fields: Vec<&str> = s.splitn(6, ':').collect();
        n.platform = Some(Platform::Bedrock);
        if let Some(region) = fields.get(3).filter(|r| !r.is_empty()) {
            n.deployment = Some(region_deployment(region));
        }
        s = s.rsplit('/').next().unwrap_or_default().to_owned();
        push(&mut n, &s);
    }

    // Routing prefixes: anthropic/, openai/, vertex_ai/, bedrock/us-west-2/1-month-commitment/…
    if s.contains('/') {
        let segs: Vec<&str> = s.split('/').collect();
        for seg in &segs[..segs.len() - 1] {
            match *seg {
                "bedrock" | "bedrock_converse" => n.platform = Some(Platform::Bedrock),
                "vertex_ai" | "vertex" | "vertex_ai_beta" => n.platform = Some(Platform::Vertex),
                r if is_aws_region(r) => n.deployment = Some(region_deployment(r)),
                _ => {}
            }
        }
        s = segs.last().copied().unwrap_or_default().to_owned();
        push(&mut n, &s);
    }

    // Bedrock cross-region inference profiles, then the vendor prefix.
    for (prefix, dep) in BEDROCK_PROFILES {
        if let Some(rest) = s.strip_prefix(prefix)
            && BEDROCK_VENDORS.iter().any(|v| rest.starts_with(v))
        {
            n.platform = Some(Platform::Bedrock);
            // The profile decides the price, whatever region the call went through; only a
            // GovCloud region (its own partition) outranks it.
            if n.deployment != Some(Deployment::GovCloud) {
                n.deployment = Some(*dep);
            }
            s = rest.to_owned();
            push(&mut n, &s);
            break;
        }
    }
    if let Some(v) = BEDROCK_VENDORS.iter().find(|v| s.starts_with(**v)) {
        n.platform = Some(Platform::Bedrock);
        // An id without a profile prefix runs in one region: regional pricing.
        n.deployment.get_or_insert(Deployment::Regional);
        s = s[v.len()..].to_owned();
        push(&mut n, &s);
    }

    // Vertex `@20241022` / `@default`.
    if let Some(i) = s.find('@') {
        n.platform.get_or_insert(Platform::Vertex);
        s.truncate(i);
        push(&mut n, &s);
    }

    if let Some(stripped) = strip_version_suffix(&s) {
        s = stripped.to_owned();
        push(&mut n, &s);
    }

    // Claude Code reports fast mode as `<model>-fast`. Other vendors' `-fast` models
    // (grok-3-fast) are models of their own, found by the exact lookups above.
    if s.starts_with("claude")
        && let Some(stripped) = s.strip_suffix("-fast")
    {
        n.fast = true;
        s = stripped.to_owned();
        push(&mut n, &s);
    }

    if let Some(swapped) = swap_claude_word_order(&canonical(&s)) {
        push(&mut n, &swapped);
        // Keep the original order last: it is the form used for the prefix match.
        let c = canonical(&s);
        n.candidates.retain(|x| *x != c);
        n.candidates.push(c);
    }
    n
}

/// True when `rest` (what follows a catalog key in a query, starting with `-`) only adds a
/// date, a snapshot number, a version or `-latest`: never a different model, so that
/// `claude-opus-4-5` cannot fall back to `claude-opus-4`, nor `gpt-4o-mini` to `gpt-4o`.
pub(crate) fn is_suffix_only(rest: &str) -> bool {
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let segs: Vec<&str> = rest.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let mut i = 0;
    while i < segs.len() {
        let s = segs[i];
        if digits(s, 4)
            && segs.get(i + 1).is_some_and(|m| digits(m, 2))
            && segs.get(i + 2).is_some_and(|d| digits(d, 2))
        {
            i += 3; // 2024-08-06
        } else if digits(s, 4) || digits(s, 6) || digits(s, 8) {
            i += 1; // 0709, 2512, 20250929
        } else if s == "latest" || s == "default" {
            i += 1;
        } else if s.len() >= 2 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit()) {
            i += 1; // v2
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(raw: &str) -> String {
        normalize(raw).candidates.last().cloned().unwrap()
    }

    #[test]
    fn strips_routing_and_platform_forms() {
        assert_eq!(last("anthropic/claude-sonnet-4-5"), "claude-sonnet-4-5");
        let n = normalize("us.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(n.candidates.last().unwrap(), "claude-sonnet-4-5-20250929");
        assert_eq!(
            (n.platform, n.deployment),
            (Some(Platform::Bedrock), Some(Deployment::Regional))
        );
        let n = normalize("global.anthropic.claude-opus-4-6-v1");
        assert_eq!(n.deployment, Some(Deployment::Global));
        assert_eq!(n.candidates.last().unwrap(), "claude-opus-4-6");
        let n = normalize("bedrock/us-gov-west-1/anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(n.deployment, Some(Deployment::GovCloud));
        let n = normalize("bedrock/us-east-1/global.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(
            n.deployment,
            Some(Deployment::Global),
            "a global profile is list price"
        );
        let n = normalize("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-7");
        assert_eq!(n.candidates.last().unwrap(), "claude-opus-4-7");
        assert_eq!(n.deployment, Some(Deployment::Regional));
        let n = normalize("vertex_ai/claude-opus-4-1@20250805");
        assert_eq!(n.platform, Some(Platform::Vertex));
        assert_eq!(n.candidates.last().unwrap(), "claude-opus-4-1");
        assert_eq!(last("claude-opus-4.6"), "claude-opus-4-6");
        assert_eq!(last("claude-opus-4-6[1m]"), "claude-opus-4-6");
        let n = normalize("claude-opus-4-6-fast");
        assert!(n.fast);
        assert_eq!(n.candidates.last().unwrap(), "claude-opus-4-6");
        assert!(!normalize("grok-3-fast").fast);
    }

    #[test]
    fn swaps_claude_word_order() {
        let n = normalize("claude-4-sonnet-20250514");
        assert!(
            n.candidates
                .contains(&"claude-sonnet-4-20250514".to_owned()),
            "{n:?}"
        );
        assert_eq!(
            swap_claude_word_order("claude-sonnet-3-5"),
            Some("claude-3-5-sonnet".into())
        );
    }

    #[test]
    fn suffix_rule() {
        assert!(is_suffix_only("-20250929"));
        assert!(is_suffix_only("-2024-08-06"));
        assert!(is_suffix_only("-latest"));
        assert!(is_suffix_only("-0709"));
        assert!(!is_suffix_only("-5"));
        assert!(!is_suffix_only("-mini"));
        assert!(!is_suffix_only("-5-20251101"));
        assert!(!is_suffix_only("20250929"));
    }
}
