//! A profile as a form or a JSON object of the same fields (`name`,
//! `time_mode`, `tz`, `ntp_mode`, `ntp_servers`, `dns_mode`,
//! `dns_servers`, `search_domains`, `hostname`, `discoverable`,
//! `name_scope`, `location_scope`, `main_resolution`, `main_fps`,
//! `main_bitrate`, `main_gov`, `main_profile`, the same for `sub_`,
//! `user_name`/`user_level`/`user_password` (repeated or arrays),
//! `rotate`): parsed and validated field by field into a [`ProfileSpec`].

use super::spec::{ProfileSpec, ServersSpec, TimeSpec, UserSpec};
use crate::fleet::console::Fields;
use crate::onvif::encoder::EncoderWant;

fn text(f: &dyn Fields, key: &str) -> String {
    f.get(key).trim().to_string()
}

fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn valid_host(s: &str) -> bool {
    s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

/// Parse the form into a spec; errors name their field. Passwords left
/// empty keep the sealed one of `old` for that user.
/// The placeholders a pattern may hold ([`super::spec::render`]).
pub const PLACEHOLDERS: [&str; 6] = ["{site}", "{model}", "{serial}", "{mac}", "{name}", "{id}"];

/// Every `{…}` in a pattern is a known placeholder, and braces pair up.
pub fn check_placeholders(pattern: &str) -> Result<(), String> {
    let mut rest = pattern;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a `}` without its `{`".into());
        }
        let Some(close) = rest[open..].find('}') else {
            return Err("a `{` without its `}`".into());
        };
        let word = &rest[open..open + close + 1];
        if !PLACEHOLDERS.contains(&word) {
            return Err(format!(
                "unknown placeholder {word} (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

pub fn parse_spec(
    f: &dyn Fields,
    old: Option<&ProfileSpec>,
    seal: &dyn Fn(&str) -> String,
) -> Result<(String, ProfileSpec), Vec<String>> {
    let mut errors = Vec::new();
    let name = text(f, "name");
    if name.is_empty() || name.chars().count() > 100 {
        errors.push("name: required, at most 100 characters".into());
    }
    let mut s = ProfileSpec::default();
    let tz = text(f, "tz");
    if tz.len() > 100 || tz.chars().any(|c| c.is_control()) {
        errors.push("time zone: at most 100 printable characters".into());
    }
    s.time = match text(f, "time_mode").as_str() {
        "" => None,
        m @ ("ntp" | "manual") => Some(TimeSpec {
            ntp: m == "ntp",
            tz: (!tz.is_empty()).then(|| tz.clone()),
        }),
        _ => {
            errors.push("time: NTP, manual or leave".into());
            None
        }
    };
    for (key, label) in [("ntp", "NTP"), ("dns", "DNS")] {
        let servers = list(&f.get(&format!("{key}_servers")));
        if key == "dns" {
            // ONVIF's SetDNS takes DNS servers by address only.
            if let Some(bad) = servers
                .iter()
                .find(|x| x.parse::<std::net::IpAddr>().is_err())
            {
                errors.push(format!(
                    "DNS servers: {bad:?} is not an IP address (DNS servers are given by address)"
                ));
            }
        } else if let Some(bad) = servers.iter().find(|x| !valid_host(x)) {
            errors.push(format!(
                "{label} servers: {bad:?} is not a host name or address"
            ));
        }
        let search = if key == "dns" {
            list(&f.get("search_domains"))
        } else {
            Vec::new()
        };
        if let Some(bad) = search.iter().find(|x| !valid_host(x)) {
            errors.push(format!("search domains: {bad:?} is not a domain"));
        }
        let spec = match text(f, &format!("{key}_mode")).as_str() {
            "" => None,
            "dhcp" => Some(ServersSpec {
                from_dhcp: true,
                servers: Vec::new(),
                search_domains: search,
            }),
            "manual" => {
                if servers.is_empty() {
                    errors.push(format!("{label} servers: at least one for manual"));
                }
                Some(ServersSpec {
                    from_dhcp: false,
                    servers,
                    search_domains: search,
                })
            }
            _ => {
                errors.push(format!("{label}: DHCP, manual or leave"));
                None
            }
        };
        if key == "ntp" {
            s.ntp = spec;
        } else {
            s.dns = spec;
        }
    }
    let hostname = text(f, "hostname");
    if hostname.len() > 200 {
        errors.push("hostname pattern: at most 200 characters".into());
    }
    for (label, key) in [
        ("hostname pattern", "hostname"),
        ("name scope", "name_scope"),
        ("location scope", "location_scope"),
    ] {
        if let Err(e) = check_placeholders(&text(f, key)) {
            errors.push(format!("{label}: {e}"));
        }
    }
    s.hostname = (!hostname.is_empty()).then_some(hostname);
    s.discoverable = match text(f, "discoverable").as_str() {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        _ => {
            errors.push("discovery: yes, no or leave".into());
            None
        }
    };
    for (key, slot) in [
        ("name_scope", &mut s.name_scope),
        ("location_scope", &mut s.location_scope),
    ] {
        let v = text(f, key);
        if v.len() > 200 {
            errors.push(format!("{}: at most 200 characters", key.replace('_', " ")));
        }
        *slot = (!v.is_empty()).then_some(v);
    }
    for (i, kind) in ["main", "sub"].iter().enumerate() {
        let g = |n: &str| text(f, &format!("{kind}_{n}"));
        let mut e = EncoderWant::default();
        let mut any = false;
        let res = g("resolution");
        if !res.is_empty() {
            any = true;
            match res
                .to_ascii_lowercase()
                .replace('×', "x")
                .split_once('x')
                .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
            {
                Some((w, h)) if w > 0 && h > 0 => {
                    e.width = Some(w);
                    e.height = Some(h);
                }
                _ => errors.push(format!(
                    "{kind} stream resolution: WIDTHxHEIGHT, e.g. 1920x1080"
                )),
            }
        }
        let num = |n: &str, label: &str, errors: &mut Vec<String>| -> Option<u32> {
            let v = g(n);
            if v.is_empty() {
                return None;
            }
            match v.parse::<u32>() {
                Ok(x) if x > 0 => Some(x),
                _ => {
                    errors.push(format!("{kind} stream {label}: a positive whole number"));
                    None
                }
            }
        };
        e.frame_rate = num("fps", "frame rate", &mut errors).map(|v| v as f32);
        e.bitrate_kbps = num("bitrate", "bitrate (kbit/s)", &mut errors);
        e.gov_length = num("gov", "GOP length", &mut errors);
        let prof = g("profile");
        if !prof.is_empty() {
            if !["Baseline", "Main", "Extended", "High"].contains(&prof.as_str()) {
                errors.push(format!(
                    "{kind} stream profile: Baseline, Main, Extended or High"
                ));
            }
            e.profile = Some(prof);
        }
        any |= e.frame_rate.is_some()
            || e.bitrate_kbps.is_some()
            || e.gov_length.is_some()
            || e.profile.is_some();
        let slot = if i == 0 {
            &mut s.main_encoder
        } else {
            &mut s.sub_encoder
        };
        *slot = any.then_some(e);
    }
    let names = f.all("user_name");
    let levels = f.all("user_level");
    let passwords = f.all("user_password");
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            errors.push(format!(
                "user {name:?}: letters, digits, _ - . only, at most 32"
            ));
            continue;
        }
        let level = levels.get(i).cloned().unwrap_or_default();
        if !["Administrator", "Operator", "User"].contains(&level.as_str()) {
            errors.push(format!(
                "user {name}: level Administrator, Operator or User"
            ));
        }
        let pw = passwords.get(i).cloned().unwrap_or_default();
        let sealed = if pw.is_empty() {
            match old.and_then(|o| o.users.iter().find(|u| u.username == name)) {
                Some(u) => u.password_sealed.clone(),
                None => {
                    errors.push(format!("user {name}: a password is needed"));
                    String::new()
                }
            }
        } else if pw.chars().count() < 8 {
            errors.push(format!("user {name}: password of at least 8 characters"));
            String::new()
        } else {
            seal(&pw)
        };
        s.users.push(UserSpec {
            username: name.into(),
            level,
            password_sealed: sealed,
        });
    }
    s.rotate_admin_password = f.get("rotate") == "on";
    if errors.is_empty() {
        Ok((name, s))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod placeholder_tests {
    use super::check_placeholders;

    #[test]
    fn patterns_name_only_known_placeholders() {
        assert!(check_placeholders("cam-{site}-{id}").is_ok());
        assert!(check_placeholders("plain").is_ok());
        let e = check_placeholders("cam-{foo}").unwrap_err();
        assert!(
            e.contains("unknown placeholder {foo}") && e.contains("{serial}"),
            "{e}"
        );
        assert!(
            check_placeholders("cam-{site")
                .unwrap_err()
                .contains("without its `}`")
        );
        assert!(
            check_placeholders("cam-site}")
                .unwrap_err()
                .contains("without its `{`")
        );
    }
}
