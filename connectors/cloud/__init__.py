"""Cloud connectors: pull billing exports, inventories and metrics with the providers' SDKs."""
