//! Agents' SIP contacts: registering (with the holding node and its SIP address),
//! unregistering, and the live contacts of an agent.

use jiff::Timestamp;

use super::{Contact, ContactAddr, Presence, PresenceError, after};

impl Presence {
    /// Registers or refreshes (same URI) a contact; `expires_secs == 0` removes it, as in SIP.
    /// Returns the agent's live contacts, for the 200 OK.
    pub fn register(
        &mut self,
        agent: &str,
        contact: ContactAddr,
        expires_secs: u32,
        node: &str,
        now: Timestamp,
    ) -> Result<Vec<Contact>, PresenceError> {
        self.register_via(agent, contact, expires_secs, node, "", now)
    }

    /// [`Presence::register`] naming the holding node's SIP address as well, so that a call
    /// planned on another node knows which node holds the registration.
    pub fn register_via(
        &mut self,
        agent: &str,
        contact: ContactAddr,
        expires_secs: u32,
        node: &str,
        node_address: &str,
        now: Timestamp,
    ) -> Result<Vec<Contact>, PresenceError> {
        if expires_secs == 0 {
            return self.unregister(agent, &contact.uri, now);
        }
        let expires_at = after(now, expires_secs);
        self.update(agent, now, |rec| {
            match rec.contacts.iter_mut().find(|c| c.uri == contact.uri) {
                Some(c) => {
                    c.expires_at = expires_at;
                    c.node = node.to_owned();
                    c.node_address = node_address.to_owned();
                    c.source = contact.source;
                }
                None => rec.contacts.push(Contact {
                    agent: agent.to_owned(),
                    uri: contact.uri,
                    node: node.to_owned(),
                    node_address: node_address.to_owned(),
                    source: contact.source,
                    expires_at,
                    registered_at: now,
                }),
            }
            rec.live_contacts(now)
        })
    }

    /// Removes one contact (unknown URIs are fine: un-REGISTER is idempotent).
    pub fn unregister(
        &mut self,
        agent: &str,
        uri: &str,
        now: Timestamp,
    ) -> Result<Vec<Contact>, PresenceError> {
        self.update(agent, now, |rec| {
            rec.contacts.retain(|c| c.uri != uri);
            rec.live_contacts(now)
        })
    }

    /// Removes every contact of the agent (`Contact: *`).
    pub fn unregister_all(&mut self, agent: &str, now: Timestamp) -> Result<(), PresenceError> {
        self.update(agent, now, |rec| rec.contacts.clear())
    }

    /// The agent's unexpired contacts.
    pub fn contacts(&self, agent: &str, now: Timestamp) -> Result<Vec<Contact>, PresenceError> {
        Ok(self.record(agent)?.live_contacts(now))
    }
}
