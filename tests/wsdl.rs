//! The declared contract (`wsdl/`) and what the client sends (`ops.rs`) agree:
//! same operations, same namespaces, same SOAP actions, nothing extra.

use std::collections::BTreeSet;

use camfleet::onvif::ops;
use camfleet::xml;

/// (target namespace, operation, soapAction) for every binding operation.
fn declared() -> BTreeSet<(String, String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wsdl") {
            continue;
        }
        let root = xml::parse(&std::fs::read(&path).unwrap()).unwrap();
        let tns = root.attr("targetNamespace").unwrap().to_string();
        let port_ops: BTreeSet<String> = root
            .child_local("portType")
            .unwrap()
            .children_local("operation")
            .map(|o| o.attr("name").unwrap().to_string())
            .collect();
        for binding in root.children_local("binding") {
            for op in binding.children_local("operation") {
                let name = op.attr("name").unwrap().to_string();
                assert!(
                    port_ops.contains(&name),
                    "{}: {name} bound but not in portType",
                    path.display()
                );
                let action = op
                    .child_local("operation")
                    .and_then(|o| o.attr("soapAction"))
                    .unwrap()
                    .to_string();
                out.insert((tns.clone(), name, action));
            }
        }
    }
    out
}

#[test]
fn every_operation_sent_is_declared_with_its_namespace_and_action() {
    let declared = declared();
    for op in ops::ALL {
        let want = (op.namespace.to_string(), op.name.to_string(), op.action());
        assert!(
            declared.contains(&want),
            "{op:?} is not declared in wsdl/ as {want:?}"
        );
    }
}

#[test]
fn nothing_is_declared_that_the_client_does_not_send() {
    let sent: BTreeSet<_> = ops::ALL
        .iter()
        .map(|op| (op.namespace.to_string(), op.name.to_string(), op.action()))
        .collect();
    for d in declared() {
        assert!(sent.contains(&d), "{d:?} declared in wsdl/ but never sent");
    }
}
