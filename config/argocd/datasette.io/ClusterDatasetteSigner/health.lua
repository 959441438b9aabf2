-- Argo CD health for datasette.io/DatasetteSigner and datasette.io/ClusterDatasetteSigner:
--   not yet observed (no status, observedGeneration -1 or behind metadata.generation) -> Progressing
--   Stalled=True (KeyMissing: a person must act)                                       -> Degraded
--   Ready=True                                                                         -> Healthy
--   Reconciling=True (SecretNotFound: the Secret may be on its way)                    -> Progressing
local hs = {status = "Progressing", message = "Waiting for the operator to observe the signer"}

local function condition(ctype)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == ctype then
        return c
      end
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil or obj.status.observedGeneration == nil or obj.status.observedGeneration < 0 then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end

local ready = condition("Ready")
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

hs.message = "Waiting for the Ready condition"
return hs
