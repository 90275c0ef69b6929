-- Argo CD health check for GitlabDeployment (gitlab-operator.io), by gitlab-deployment-operator.
-- Conditions and their meaning: docs/approvals.md of that project.
--
-- With spec.approval.gate, the GitlabDeployment holds each revision until GitLab approves it
-- and the workload is synced in a later wave, so health follows the Approved condition:
--   Healthy      Approved=True for this generation (reason Approved or NotRequired), and the
--                approval holds for spec.sha when spec.sha is set;
--   Degraded     Approved=False reason ApprovalRejected, or Stalled=True (a failed rollout
--                after the approval included);
--   Progressing  otherwise: approvals pending (the condition's message says how many and
--                how to approve), no GitLab deployment yet, or not yet observed.
-- Ready is not waited on in gate mode: it turns True only after the workload rolled out.
-- Without the gate, health follows Ready, Stalled and Reconciling as kstatus reads them.
-- A condition counts only when written for the current metadata.generation.
--
-- Uses no Lua standard library beyond the base one, so it runs as an argocd-cm customization
-- without resource.customizations.useOpenLibs.

local hs = {}
local generation = obj.metadata.generation

local function find(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- Written for this generation (a condition without observedGeneration counts as current,
-- as kstatus has it, except Approved: see below).
local function current(c)
  return c ~= nil and (c.observedGeneration == nil or c.observedGeneration == generation)
end

local function is_true(c)
  return current(c) and c.status == "True"
end

local function text(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration ~= generation then
  return result("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
end
local conditions = status.conditions
local stalled = find(conditions, "Stalled")
local gate = obj.spec ~= nil and obj.spec.approval ~= nil and obj.spec.approval.gate == true

if gate then
  local approved = find(conditions, "Approved")
  -- Approved counts only with its own observedGeneration equal to the generation: an
  -- approval of an older spec never passes for a newer one.
  local fresh = approved ~= nil and approved.observedGeneration == generation
  if fresh and approved.status == "False" and approved.reason == "ApprovalRejected" then
    return result("Degraded", text(approved))
  end
  if is_true(stalled) then
    return result("Degraded", text(stalled))
  end
  if not fresh then
    return result("Progressing", "Waiting for the operator to check approvals of generation " .. tostring(generation))
  end
  if approved.status == "True" then
    local wanted = obj.spec.sha
    local held = nil
    if status.approval ~= nil then
      held = status.approval.sha
    elseif status.deployment ~= nil then
      held = status.deployment.sha
    end
    if wanted ~= nil and held ~= wanted then
      return result("Progressing", "Waiting for the GitLab deployment of " .. wanted)
    end
    return result("Healthy", text(approved))
  end
  return result("Progressing", text(approved))
end

local ready = find(conditions, "Ready")
if is_true(stalled) then
  return result("Degraded", text(stalled))
end
if is_true(ready) then
  return result("Healthy", text(ready))
end
local reconciling = find(conditions, "Reconciling")
if is_true(reconciling) then
  return result("Progressing", text(reconciling))
end
if current(ready) then
  return result("Progressing", text(ready))
end
return result("Progressing", "Waiting for the operator to report the rollout")
