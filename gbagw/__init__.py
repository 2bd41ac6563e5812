"""gbagw command line and process composition: builds each service's config and wires them up."""
