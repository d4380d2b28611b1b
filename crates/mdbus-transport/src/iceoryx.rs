//! The iceoryx2 shared-memory transport.
