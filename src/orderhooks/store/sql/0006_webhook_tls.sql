-- A webhook's client certificate (docs/security.md, "Client certificates"): NULL, or JSON
-- {"clientCertificate", "clientKey" (sealed like the secrets), "caCertificate"}.
ALTER TABLE webhooks ADD COLUMN tls TEXT;
