//! Configuration of `akkord node`: a TOML file, environment variables and flags, in
//! rising order of precedence.
//!
//! Every source is read as text and checked by one parser per key, so a bad value gets the
//! same message wherever it came from: the key, the value and what is expected.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use akkord_actor::address::Address;

/// Default actor system name, shared by every node of one cluster.
pub(crate) const DEFAULT_SYSTEM: &str = "akkord";
/// Default remoting port, Akka's.
pub(crate) const DEFAULT_PORT: u16 = 2552;
/// Default management HTTP port, Akka Management's.
pub(crate) const DEFAULT_MANAGEMENT_PORT: u16 = 8558;
/// Default number of word-count worker actors per node.
pub(crate) const DEFAULT_WORKERS: usize = 2;

/// A configuration value that was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} = {value:?} (from {origin}): expected {expected}")]
pub(crate) struct ConfigError {
    /// The key, as written in the source it came from.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// Source of the value.
    pub origin: SourceName,
    /// Description of the accepted values.
    pub expected: String,
}

/// Name of a configuration source, with the file path, variable or flag.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SourceName(String);

impl SourceName {
    /// Names the command-line flag of `key`.
    pub(crate) fn flag(key: &str) -> Self {
        Self(format!("flag --{}", key.replace('_', "-")))
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Settings of one `akkord node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeConfig {
    /// Actor system name; every node of a cluster uses the same.
    pub system: String,
    /// Address the remoting listener binds and peers dial.
    pub host: IpAddr,
    /// Remoting port.
    pub port: u16,
    /// Seed nodes; empty means this node waits for a manual join.
    pub seed_nodes: Vec<Address>,
    /// Roles of this node.
    pub roles: BTreeSet<String>,
    /// Address the management HTTP server binds.
    pub management_host: IpAddr,
    /// Management HTTP port; 0 picks a free one.
    pub management_port: u16,
    /// Split brain resolver stable-after; `None` keeps the default (20 s).
    pub stable_after: Option<Duration>,
    /// Word-count worker actors started on this node when it has the `worker` role.
    pub workers: usize,
    /// Minimum time a worker spends on one chunk, so that demos last long enough to watch
    /// failover.
    pub chunk_cost: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            system: DEFAULT_SYSTEM.to_owned(),
            host: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            seed_nodes: Vec::new(),
            roles: BTreeSet::from(["worker".to_owned()]),
            management_host: IpAddr::from([127, 0, 0, 1]),
            management_port: DEFAULT_MANAGEMENT_PORT,
            stable_after: None,
            workers: DEFAULT_WORKERS,
            chunk_cost: Duration::ZERO,
        }
    }
}

/// The keys a node accepts, with their environment variable and what each expects.
pub(crate) const KEYS: &[(&str, &str, &str)] = &[
    ("system", "AKKORD_SYSTEM", "a name of letters, digits, '-' and '_'"),
    ("host", "AKKORD_HOST", "an IP address such as 127.0.0.1"),
    ("port", "AKKORD_PORT", "a port number from 0 to 65535"),
    (
        "seed_nodes",
        "AKKORD_SEED_NODES",
        "a list of node addresses such as akkord://akkord@127.0.0.1:2552 (comma-separated in the environment)",
    ),
    (
        "roles",
        "AKKORD_ROLES",
        "a list of role names (comma-separated in the environment)",
    ),
    (
        "management_host",
        "AKKORD_MANAGEMENT_HOST",
        "an IP address such as 127.0.0.1",
    ),
    (
        "management_port",
        "AKKORD_MANAGEMENT_PORT",
        "a port number from 0 to 65535",
    ),
    (
        "stable_after_secs",
        "AKKORD_STABLE_AFTER_SECS",
        "a whole number of seconds from 1 to 3600",
    ),
    ("workers", "AKKORD_WORKERS", "a whole number from 0 to 1024"),
    (
        "chunk_cost_ms",
        "AKKORD_CHUNK_COST_MS",
        "a whole number of milliseconds from 0 to 60000",
    ),
];

/// Environment variables of the program that are not node settings.
const OTHER_VARIABLES: &[&str] = &["AKKORD_CONFIG", "AKKORD_MANAGEMENT", "AKKORD_SIM_SEED"];

/// Returns the names among `names` that start with `AKKORD_` but name no setting, so that a
/// misspelled variable is reported instead of silently ignored.
pub(crate) fn unknown_variables(names: impl Iterator<Item = String>) -> Vec<String> {
    names
        .filter(|name| name.starts_with("AKKORD_"))
        .filter(|name| {
            !KEYS.iter().any(|(_, variable, _)| variable == name)
                && !OTHER_VARIABLES.contains(&name.as_str())
        })
        .collect()
}

/// Values given as text, by key, from one source.
#[derive(Debug, Default)]
pub(crate) struct RawValues {
    values: Vec<(String, RawValue, SourceName)>,
}

/// A value before parsing: a string or, from TOML, a list of strings.
#[derive(Debug, Clone)]
pub(crate) enum RawValue {
    Text(String),
    List(Vec<String>),
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Text(text) => f.write_str(text),
            RawValue::List(items) => f.write_str(&items.join(",")),
        }
    }
}

impl RawValues {
    /// Adds `value` for `key` from `source`.
    pub(crate) fn push(&mut self, key: &str, value: RawValue, source: SourceName) {
        self.values.push((key.to_owned(), value, source));
    }

    /// Reads the TOML file at `path`.
    pub(crate) fn from_file(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|error| FileError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub(crate) fn from_toml(text: &str, origin: &str) -> Result<Self, FileError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| FileError::Parse {
                    origin: origin.to_owned(),
                    message: error.message().to_owned(),
                })?;
        let mut values = Self::default();
        for (key, value) in table {
            if !KEYS.iter().any(|(known, _, _)| *known == key) {
                return Err(FileError::UnknownKey {
                    origin: origin.to_owned(),
                    key,
                });
            }
            let raw = match value {
                toml::Value::String(text) => RawValue::Text(text),
                toml::Value::Integer(number) => RawValue::Text(number.to_string()),
                toml::Value::Array(items) => {
                    let mut list = Vec::new();
                    for item in items {
                        match item {
                            toml::Value::String(text) => list.push(text),
                            other => {
                                return Err(FileError::WrongType {
                                    origin: origin.to_owned(),
                                    key,
                                    value: other.to_string(),
                                })
                            }
                        }
                    }
                    RawValue::List(list)
                }
                other => {
                    return Err(FileError::WrongType {
                        origin: origin.to_owned(),
                        key,
                        value: other.to_string(),
                    })
                }
            };
            values.push(&key, raw, SourceName(origin.to_owned()));
        }
        Ok(values)
    }

    /// Reads the `AKKORD_*` variables through `lookup`.
    pub(crate) fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut values = Self::default();
        for (key, variable, _) in KEYS {
            if let Some(value) = lookup(variable) {
                values.push(
                    key,
                    RawValue::Text(value),
                    SourceName(format!("environment variable {variable}")),
                );
            }
        }
        values
    }
}

/// Failure to read the configuration file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("cannot read the config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {origin} is not valid TOML: {message}")]
    Parse { origin: String, message: String },
    #[error("unknown key {key:?} in {origin}: expected one of {}", known_keys())]
    UnknownKey { origin: String, key: String },
    #[error("invalid {key} = {value} in {origin}: expected a string, a whole number or a list of strings")]
    WrongType {
        origin: String,
        key: String,
        value: String,
    },
}

fn known_keys() -> String {
    KEYS.iter()
        .map(|(key, _, _)| *key)
        .collect::<Vec<_>>()
        .join(", ")
}

impl NodeConfig {
    /// Builds the configuration from the sources in rising order of precedence.
    pub(crate) fn resolve(sources: &[RawValues]) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for source in sources {
            for (key, value, origin) in &source.values {
                config.apply(key, value, origin)?;
            }
        }
        Ok(config)
    }

    fn apply(
        &mut self,
        key: &str,
        value: &RawValue,
        origin: &SourceName,
    ) -> Result<(), ConfigError> {
        let expected = KEYS
            .iter()
            .find(|(known, _, _)| *known == key)
            .map_or("a known key", |(_, _, expected)| expected);
        let fail = || ConfigError {
            key: key.to_owned(),
            value: value.to_string(),
            origin: SourceName(origin.0.clone()),
            expected: expected.to_owned(),
        };
        let text = || match value {
            RawValue::Text(text) => Ok(text.trim().to_owned()),
            RawValue::List(_) => Err(fail()),
        };
        let list = || -> Vec<String> {
            match value {
                RawValue::Text(text) => text
                    .split(',')
                    .map(|item| item.trim().to_owned())
                    .filter(|item| !item.is_empty())
                    .collect(),
                RawValue::List(items) => items.iter().map(|item| item.trim().to_owned()).collect(),
            }
        };
        match key {
            "system" => {
                let name = text()?;
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    return Err(fail());
                }
                self.system = name;
            }
            "host" => self.host = text()?.parse().map_err(|_| fail())?,
            "port" => self.port = text()?.parse().map_err(|_| fail())?,
            "seed_nodes" => {
                self.seed_nodes = list()
                    .iter()
                    .map(|item| item.parse::<Address>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| fail())?;
            }
            "roles" => {
                let roles = list();
                if roles
                    .iter()
                    .any(|role| role.is_empty() || role.chars().any(char::is_whitespace))
                {
                    return Err(fail());
                }
                self.roles = roles.into_iter().collect();
            }
            "management_host" => self.management_host = text()?.parse().map_err(|_| fail())?,
            "management_port" => self.management_port = text()?.parse().map_err(|_| fail())?,
            "stable_after_secs" => {
                let secs: u64 = text()?.parse().map_err(|_| fail())?;
                if !(1..=3600).contains(&secs) {
                    return Err(fail());
                }
                self.stable_after = Some(Duration::from_secs(secs));
            }
            "workers" => {
                let workers: usize = text()?.parse().map_err(|_| fail())?;
                if workers > 1024 {
                    return Err(fail());
                }
                self.workers = workers;
            }
            "chunk_cost_ms" => {
                let millis: u64 = text()?.parse().map_err(|_| fail())?;
                if millis > 60_000 {
                    return Err(fail());
                }
                self.chunk_cost = Duration::from_millis(millis);
            }
            _ => return Err(fail()),
        }
        Ok(())
    }

    /// Checks the values that only make sense together.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for seed in &self.seed_nodes {
            if seed.system() != self.system {
                return Err(ConfigError {
                    key: "seed_nodes".to_owned(),
                    value: seed.to_string(),
                    origin: SourceName("the resolved configuration".to_owned()),
                    expected: format!(
                        "addresses of system {:?}, the name of this node's system",
                        self.system
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(key: &str, value: &str) -> RawValues {
        let mut values = RawValues::default();
        values.push(
            key,
            RawValue::Text(value.to_owned()),
            SourceName("--flag".to_owned()),
        );
        values
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let file = RawValues::from_toml(
            "port = 3000\nroles = [\"worker\", \"backend\"]\nseed_nodes = [\"akkord://akkord@127.0.0.1:3000\"]\n",
            "test.toml",
        )
        .unwrap();
        let env = RawValues::from_env(|name| (name == "AKKORD_PORT").then(|| "3001".to_owned()));
        let config = NodeConfig::resolve(&[file, env, flag("workers", "5")]).unwrap();
        assert_eq!(config.port, 3001);
        assert_eq!(config.workers, 5);
        assert_eq!(config.roles.len(), 2);
        assert_eq!(config.seed_nodes[0].port(), 3000);
        config.check().unwrap();
    }

    #[test]
    fn bad_values_rejected_with_key() {
        let error = NodeConfig::resolve(&[flag("port", "70000")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("port"), "{message}");
        assert!(message.contains("70000"), "{message}");
        assert!(message.contains("0 to 65535"), "{message}");

        let error = NodeConfig::resolve(&[flag("seed_nodes", "127.0.0.1:2552")]).unwrap_err();
        assert!(error.to_string().contains("akkord://"), "{error}");

        let env =
            RawValues::from_env(|name| (name == "AKKORD_HOST").then(|| "localhost:1".to_owned()));
        let error = NodeConfig::resolve(&[env]).unwrap_err();
        assert!(error.to_string().contains("AKKORD_HOST"), "{error}");
    }

    #[test]
    fn file_errors_name_the_key() {
        let error = RawValues::from_toml("prot = 1\n", "x.toml").unwrap_err();
        assert!(error.to_string().contains("\"prot\""), "{error}");
        let error = RawValues::from_toml("port = true\n", "x.toml").unwrap_err();
        assert!(error.to_string().contains("port"), "{error}");
        let error = RawValues::from_toml("port = \n", "x.toml").unwrap_err();
        assert!(error.to_string().contains("not valid TOML"), "{error}");
    }

    #[test]
    fn misspelled_variable_is_reported() {
        let names = ["AKKORD_PROT", "AKKORD_PORT", "AKKORD_CONFIG", "PATH"].map(String::from);
        assert_eq!(unknown_variables(names.into_iter()), vec!["AKKORD_PROT"]);
    }

    #[test]
    fn seed_of_another_system_is_rejected() {
        let config =
            NodeConfig::resolve(&[flag("seed_nodes", "akkord://other@127.0.0.1:2552")]).unwrap();
        let error = config.check().unwrap_err();
        assert!(error.to_string().contains("other"), "{error}");
    }
}
