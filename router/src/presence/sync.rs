//! A media node telling everything it holds (`SyncContacts`, sent when its link to the router
//! opens again): the node is the authority on its own bindings, so whatever the router still
//! has for that node and the node no longer lists — a registration that lapsed or was
//! removed while the router was down, one restored from the router's file that the node
//! never re-learned — is forgotten. Contacts held by other nodes are left alone.

use std::collections::HashSet;

use jiff::Timestamp;

use super::Presence;

impl Presence {
    /// Forgets the contacts `node` holds except those named in `kept` (agent, contact URI),
    /// recording the state changes this causes (an agent left without contacts goes
    /// offline). The kept ones are then refreshed by the caller with
    /// [`Presence::register_via`].
    pub fn retain_node_contacts(
        &mut self,
        node: &str,
        kept: &HashSet<(&str, &str)>,
        now: Timestamp,
    ) {
        let touched: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, rec)| {
                rec.contacts
                    .iter()
                    .any(|c| c.node == node && !kept.contains(&(c.agent.as_str(), c.uri.as_str())))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for agent in touched {
            // The agent is known: it was just found among the records.
            let _ = self.update(&agent, now, |rec| {
                rec.contacts.retain(|c| {
                    c.node != node || kept.contains(&(c.agent.as_str(), c.uri.as_str()))
                });
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::tests::{demo, t};
    use super::super::{AgentState, ContactAddr, Presence};

    fn addr(uri: &str) -> ContactAddr {
        ContactAddr {
            uri: uri.to_owned(),
            source: "192.0.2.7:5060".to_owned(),
        }
    }

    #[test]
    fn a_sync_forgets_what_the_node_no_longer_holds_and_keeps_other_nodes() {
        let mut p = Presence::new(&demo(), t(0));
        p.register("anna", addr("sip:anna@10.0.0.5"), 600, "node-a", t(0))
            .expect("anna known");
        p.register("anna", addr("sip:anna@10.0.0.6"), 600, "node-a", t(0))
            .expect("anna known");
        p.register("bohdan", addr("sip:bohdan@10.0.0.7"), 600, "node-a", t(0))
            .expect("bohdan known");
        p.register("olena", addr("sip:olena@10.0.0.8"), 600, "node-b", t(0))
            .expect("olena known");

        let kept: HashSet<(&str, &str)> = [("anna", "sip:anna@10.0.0.6")].into_iter().collect();
        p.retain_node_contacts("node-a", &kept, t(10));

        let anna: Vec<String> = p
            .contacts("anna", t(10))
            .expect("known")
            .into_iter()
            .map(|c| c.uri)
            .collect();
        assert_eq!(anna, ["sip:anna@10.0.0.6"]);
        assert!(p.contacts("bohdan", t(10)).expect("known").is_empty());
        assert_eq!(
            p.state("bohdan", t(10)).map(|s| s.0),
            Ok(AgentState::Offline)
        );
        assert_eq!(p.contacts("olena", t(10)).expect("known").len(), 1);
    }
}
