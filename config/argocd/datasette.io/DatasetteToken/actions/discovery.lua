-- Argo CD actions for datasette.io/DatasetteToken. "renew" asks the operator to re-mint the token
-- now (the datasette.io/renew-requested-at annotation); it is disabled while nothing would be
-- minted: spec.suspend is set, or spec.notAfter has passed (Ready reason Ended).
local actions = {}
local disabled = false
if obj.spec ~= nil and obj.spec.suspend == true then
  disabled = true
end
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" and c.reason == "Ended" then
      disabled = true
    end
  end
end
actions["renew"] = {["disabled"] = disabled}
return actions
