//! [`PriceCatalog`]: the dated prices of every known model, how ids resolve to them, and how
//! users add or override models at run time. The built-in data is `catalog.json`, embedded at
//! compile time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use chrono::{DateTime, Utc};

use super::compiled::{self, PriceVersion};
use super::resolve::{self, canonical, is_suffix_only};
use super::schema::{CatalogFile, ModelFile, ProviderDefaults};
use crate::context::{Deployment, Platform};
use crate::error::{Error, Result};

const BUILTIN_JSON: &str = include_str!("catalog.json");

/// Resolution results kept at most this many; past it new ids are resolved without caching, so
/// a stream of junk ids cannot grow memory without bound.
const RESOLVE_CACHE_CAP: usize = 16_384;

/// One model of the catalog, compiled for pricing.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    pub(crate) id: Arc<str>,
    pub(crate) provider: Arc<str>,
    pub(crate) versions: Vec<PriceVersion>,
    pub(crate) platforms: HashMap<Platform, Vec<PriceVersion>>,
    pub(crate) file: ModelFile,
}

impl ModelEntry {
    /// The canonical id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The provider key.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model exactly as the catalog file describes it.
    pub fn to_file(&self) -> &ModelFile {
        &self.file
    }

    /// The price history used on `platform` (the platform's own, else the direct one).
    pub fn versions(&self, platform: Platform) -> &[PriceVersion] {
        self.platforms.get(&platform).unwrap_or(&self.versions)
    }
}

/// A model id resolved against a catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedModel {
    pub(crate) index: usize,
    /// The catalog's canonical id.
    pub id: Arc<str>,
    /// The provider key.
    pub provider: Arc<str>,
    /// The platform the id names (`us.anthropic.…` is Bedrock), if any.
    pub platform: Option<Platform>,
    /// The deployment the id names (`us.` regional, `global.` global), if any.
    pub deployment: Option<Deployment>,
    /// True when the id itself says fast mode (Claude Code's `…-fast`).
    pub fast: bool,
}

/// Dated prices for every known model.
///
/// ```
/// use usage_core::{PriceCatalog, TokenUsage, PricingContext};
/// let catalog = PriceCatalog::builtin();
/// let usage = TokenUsage { input: 100_000, output: 100_000, ..Default::default() };
/// let at = "2026-01-15T12:00:00Z".parse().unwrap();
/// let cost = catalog.cost("claude-sonnet-4-5", &usage, at, &PricingContext::default()).unwrap();
/// assert_eq!(cost.total.to_string(), "1.8"); // 100k × $3 + 100k × $15 per million
/// ```
#[derive(Debug)]
pub struct PriceCatalog {
    version: Arc<str>,
    comments: Vec<String>,
    providers: BTreeMap<String, ProviderDefaults>,
    models: Vec<ModelEntry>,
    index: HashMap<String, usize>,
    cache: RwLock<HashMap<Box<str>, Option<ResolvedModel>>>,
}

impl Clone for PriceCatalog {
    fn clone(&self) -> Self {
        PriceCatalog {
            version: self.version.clone(),
            comments: self.comments.clone(),
            providers: self.providers.clone(),
            models: self.models.clone(),
            index: self.index.clone(),
            cache: RwLock::new(HashMap::new()),
        }
    }
}

impl Default for PriceCatalog {
    /// A copy of the built-in catalog.
    fn default() -> Self {
        PriceCatalog::builtin().clone()
    }
}

impl PriceCatalog {
    /// The catalog shipped in this build (parsed once, on first use).
    pub fn builtin() -> &'static PriceCatalog {
        static BUILTIN: OnceLock<PriceCatalog> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            PriceCatalog::from_json(BUILTIN_JSON)
                .unwrap_or_else(|e| panic!("the built-in catalog.json is invalid: {e}"))
        })
    }

    /// An empty catalog with the given version, to fill with [`PriceCatalog::add_model`].
    pub fn empty(version: impl Into<String>) -> Self {
        PriceCatalog {
            version: Arc::from(version.into()),
            comments: Vec::new(),
            providers: BTreeMap::new(),
            models: Vec::new(),
            index: HashMap::new(),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Reads a whole catalog in this crate's JSON format (see `catalog.json`). Errors name the
    /// model and the field that is wrong.
    pub fn from_json(json: &str) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::catalog("<catalog>", "<json>", e.to_string()))?;
        let obj = raw
            .as_object()
            .ok_or_else(|| Error::catalog("<catalog>", "<root>", "must be a JSON object"))?;
        let models_json = obj
            .get("models")
            .and_then(|m| m.as_array())
            .ok_or_else(|| Error::catalog("<catalog>", "models", "must be an array"))?;
        let mut models = Vec::with_capacity(models_json.len());
        for (i, m) in models_json.iter().enumerate() {
            let id = m
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or(format!("models[{i}]"));
            let file: ModelFile = serde_json::from_value(m.clone()).map_err(|e| {
                let msg = e.to_string();
                // serde names the offending field inside its message; lift it into `field`.
                let field = msg
                    .split('`')
                    .nth(1)
                    .filter(|_| {
                        msg.starts_with("unknown field") || msg.starts_with("missing field")
                    })
                    .unwrap_or("<model>")
                    .to_owned();
                Error::catalog(&id, field, msg)
            })?;
            models.push(file);
        }
        let mut head = obj.clone();
        head.insert("models".into(), serde_json::Value::Array(Vec::new()));
        let head: CatalogFile = serde_json::from_value(serde_json::Value::Object(head))
            .map_err(|e| Error::catalog("<catalog>", "<root>", e.to_string()))?;
        let mut catalog = PriceCatalog::empty(head.version);
        catalog.comments = head.comments;
        catalog.providers = head.providers;
        for m in models {
            catalog.insert(m, false)?;
        }
        Ok(catalog)
    }

    /// The catalog in its JSON file format.
    pub fn to_json(&self) -> String {
        let file = CatalogFile {
            version: self.version.to_string(),
            comments: self.comments.clone(),
            providers: self.providers.clone(),
            models: self.models.iter().map(|m| m.file.clone()).collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// The catalog version stamped on every price computed from it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Sets the catalog version (after local overrides, say).
    pub fn set_version(&mut self, version: impl Into<String>) {
        self.version = Arc::from(version.into());
    }

    /// Every model.
    pub fn models(&self) -> impl Iterator<Item = &ModelEntry> {
        self.models.iter()
    }

    /// The model with this canonical id or alias, exactly.
    pub fn model(&self, id: &str) -> Option<&ModelEntry> {
        self.index.get(&canonical(id)).map(|&i| &self.models[i])
    }

    /// Provider-level defaults (modifiers, web search fee) by provider key.
    pub fn set_provider_defaults(
        &mut self,
        provider: impl Into<String>,
        defaults: ProviderDefaults,
    ) -> Result<()> {
        let provider = provider.into();
        self.providers.insert(provider.clone(), defaults);
        // Recompile that provider's models so they inherit the new defaults.
        let files: Vec<ModelFile> = self
            .models
            .iter()
            .filter(|m| *m.provider == *provider)
            .map(|m| m.file.clone())
            .collect();
        for f in files {
            self.insert(f, true)?;
        }
        Ok(())
    }

    /// Adds a model, or replaces the one with the same id. Its aliases are added too; an alias
    /// that belonged to another model now points to this one (an override wins).
    pub fn add_model(&mut self, model: ModelFile) -> Result<()> {
        self.insert(model, true)
    }

    /// Adds every model of `other`, replacing models with the same id.
    pub fn merge(&mut self, other: PriceCatalog) -> Result<()> {
        for (p, d) in other.providers {
            self.providers.entry(p).or_insert(d);
        }
        for m in other.models {
            self.insert(m.file, true)?;
        }
        Ok(())
    }

    /// Removes a model by id; true when there was one.
    pub fn remove_model(&mut self, id: &str) -> bool {
        let Some(&i) = self.index.get(&canonical(id)) else {
            return false;
        };
        self.models.remove(i);
        self.reindex();
        true
    }

    fn compile(&self, m: ModelFile) -> Result<ModelEntry> {
        if m.id.trim().is_empty() {
            return Err(Error::catalog("<model>", "id", "is empty"));
        }
        if m.provider.trim().is_empty() {
            return Err(Error::catalog(&m.id, "provider", "is empty"));
        }
        let defaults = self.providers.get(&m.provider).cloned().unwrap_or_default();
        let inherited = m.modifiers.or(&defaults.modifiers);
        let versions = compiled::history(
            &m.id,
            "prices",
            &m.prices,
            &inherited,
            defaults.web_search_per_1k,
        )?;
        let mut platforms = HashMap::new();
        for (name, hist) in &m.platforms {
            let platform: Platform = name.parse().map_err(|_| {
                Error::catalog(
                    &m.id,
                    format!("platforms.{name}"),
                    "is not one of bedrock, vertex",
                )
            })?;
            let at = format!("platforms.{name}");
            platforms.insert(
                platform,
                compiled::history(&m.id, &at, hist, &inherited, defaults.web_search_per_1k)?,
            );
        }
        Ok(ModelEntry {
            id: Arc::from(m.id.as_str()),
            provider: Arc::from(m.provider.as_str()),
            versions,
            platforms,
            file: m,
        })
    }

    fn insert(&mut self, m: ModelFile, replace: bool) -> Result<()> {
        let entry = self.compile(m)?;
        let key = canonical(&entry.id);
        match self.models.iter().position(|e| canonical(&e.id) == key) {
            Some(i) if replace => self.models[i] = entry,
            Some(_) => {
                return Err(Error::catalog(
                    &*entry.id,
                    "id",
                    "appears twice in the catalog",
                ));
            }
            None => {
                if !replace {
                    // Loading a file: an alias shared by two models is a data error.
                    for a in std::iter::once(&entry.file.id).chain(&entry.file.aliases) {
                        if let Some(&other) = self.index.get(&canonical(a)) {
                            return Err(Error::catalog(
                                &*entry.id,
                                "aliases",
                                format!("`{a}` already names `{}`", self.models[other].id),
                            ));
                        }
                    }
                }
                let i = self.models.len();
                for a in &entry.file.aliases {
                    let k = canonical(a);
                    // An alias never takes over another model's own id.
                    let owned_by_id = self
                        .index
                        .get(&k)
                        .is_some_and(|&j| canonical(&self.models[j].id) == k);
                    if !owned_by_id {
                        self.index.insert(k, i);
                    }
                }
                self.index.insert(key, i);
                self.models.push(entry);
                self.cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                return Ok(());
            }
        }
        self.reindex();
        Ok(())
    }

    fn reindex(&mut self) {
        let mut index = HashMap::with_capacity(self.models.len() * 3);
        // Aliases first, then ids, then later models: an id always names its own model, and a
        // later (override) model wins a shared alias.
        for (i, m) in self.models.iter().enumerate() {
            for a in &m.file.aliases {
                index.insert(canonical(a), i);
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            index.insert(canonical(&m.id), i);
        }
        self.index = index;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn entry(&self, r: &ResolvedModel) -> &ModelEntry {
        &self.models[r.index]
    }

    /// Resolves any spelling of a model id: exact id or alias, then normalised forms (routing
    /// prefixes, Bedrock profiles and versions, Vertex `@date`, dotted forms, Claude Code's
    /// `[1m]` and `-fast`), then the longest catalog key that the id extends by a date,
    /// snapshot or version only. Results are cached.
    pub fn resolve(&self, model: &str) -> Result<ResolvedModel> {
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(model)
        {
            return hit.clone().ok_or_else(|| Error::UnknownModel {
                model: model.to_owned(),
            });
        }
        let found = self.resolve_uncached(model);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() < RESOLVE_CACHE_CAP {
            cache.insert(Box::from(model), found.clone());
        }
        found.ok_or_else(|| Error::UnknownModel {
            model: model.to_owned(),
        })
    }

    fn resolve_uncached(&self, model: &str) -> Option<ResolvedModel> {
        let n = resolve::normalize(model);
        let hit = n
            .candidates
            .iter()
            .find_map(|c| self.index.get(c).copied())
            .or_else(|| {
                n.candidates.iter().rev().find_map(|c| {
                    c.match_indices('-').rev().find_map(|(i, _)| {
                        let (head, rest) = c.split_at(i);
                        self.index
                            .get(head)
                            .copied()
                            .filter(|_| is_suffix_only(rest))
                    })
                })
            })?;
        let m = &self.models[hit];
        Some(ResolvedModel {
            index: hit,
            id: m.id.clone(),
            provider: m.provider.clone(),
            platform: n.platform,
            deployment: n.deployment,
            fast: n.fast,
        })
    }

    pub(crate) fn version_arc(&self) -> &Arc<str> {
        &self.version
    }

    /// The price version of `model` in force at `at` on `platform`.
    pub fn price_at(
        &self,
        model: &str,
        at: DateTime<Utc>,
        platform: Option<Platform>,
    ) -> Result<&PriceVersion> {
        let r = self.resolve(model)?;
        let p = platform.or(r.platform).unwrap_or_default();
        Ok(compiled::in_force(self.entry(&r).versions(p), at).0)
    }
}
