//! The appliance's configuration: typed schema, validation, atomic store, first-boot seed
