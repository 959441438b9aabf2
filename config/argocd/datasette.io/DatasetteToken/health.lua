-- Argo CD health for datasette.io/DatasetteToken, following the operator's status contract:
--   not yet observed (no status, observedGeneration -1 or behind metadata.generation) -> Progressing
--   spec.suspend, or Ready reason Ended or Suspended (nothing more happens, by design)  -> Suspended
--   Stalled=True (a person must act)                                                   -> Degraded
--   Ready=True                                                                         -> Healthy
--   Reconciling=True (waiting that time can fix, e.g. the signing Secret is on its way) -> Progressing
-- RestartTargetsReady=False does not change the verdict; the message mentions it.
local hs = {status = "Progressing", message = "Waiting for the operator to observe the DatasetteToken"}

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
local restart = condition("RestartTargetsReady")

local suspended = obj.spec ~= nil and obj.spec.suspend == true
if suspended or (ready ~= nil and ready.status == "False" and (ready.reason == "Ended" or ready.reason == "Suspended")) then
  hs.status = "Suspended"
  if ready ~= nil then
    hs.message = describe(ready)
  else
    hs.message = "Suspended"
  end
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if restart ~= nil and restart.status == "False" then
    hs.message = hs.message .. "; RestartTargetsReady=False: " .. describe(restart)
  end
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

if ready ~= nil and ready.status == "False" then
  -- Not Ready, yet neither waiting nor stalled: the contract has no such state, so say so loudly.
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

hs.message = "Waiting for the Ready condition"
return hs
