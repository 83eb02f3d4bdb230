//! circus-node: the client and gateway daemon around `circus-core`.
