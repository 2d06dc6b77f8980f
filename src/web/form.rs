//! Decoded `application/x-www-form-urlencoded` bodies and query strings,
//! where a name may repeat (checkbox lists, selected rows).

/// Decoded form fields; names may repeat (checkbox lists).
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    pub fn parse(raw: &[u8]) -> Self {
        FormFields(url::form_urlencoded::parse(raw).into_owned().collect())
    }
    /// The first value of a field, as sent (passwords keep their spaces).
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    /// The first value, trimmed (names, hosts, addresses).
    pub fn text(&self, name: &str) -> String {
        self.get(name).trim().to_string()
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn ids(&self, name: &str) -> Vec<i32> {
        self.all(name)
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect()
    }
}

impl crate::fleet::console::Fields for FormFields {
    fn get(&self, key: &str) -> String {
        FormFields::get(self, key)
    }
    fn ids(&self, key: &str) -> Vec<i32> {
        FormFields::ids(self, key)
    }
    fn all(&self, key: &str) -> Vec<String> {
        FormFields::all(self, key)
    }
}
