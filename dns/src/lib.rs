//! The DNS server for the federation zone (`clusterset.local`), run inside
//! the control plane and fed by snapshots of the global service table.
//!
//! The server itself arrives with service export (issue 3); this crate holds
//! its place in the workspace so the dependency direction of DESIGN.md
//! (`proto` ← `dns` ← `control`) is fixed from the start.
