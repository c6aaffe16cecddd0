//! hoist's bundled hooks: remove-container, acl, iptables, netns, network.
