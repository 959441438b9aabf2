-- Ask the operator to re-mint the token now: a new value of datasette.io/renew-requested-at. The
-- operator re-mints once per value and records it in status.lastRenewRequest.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["datasette.io/renew-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
