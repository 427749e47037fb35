// Workflow settings (saved with PATCH /api/workflows/{id}) and the definition's inputs, start and outputs.
import { useState } from "react";

const INPUT_TYPES = ["string", "integer", "number", "boolean", "object", "array"];

function defaultText(spec) {
  if (!spec || spec.default === undefined) return "";
  return typeof spec.default === "string" ? spec.default : JSON.stringify(spec.default);
}

function parseDefault(type, text) {
  if (text === "") return undefined;
  if (type === "string") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text; // the hub names the problem (default must be …)
  }
}

export function InputsEditor({ inputs, readOnly, onChange }) {
  const entries = Object.entries(inputs || {});
  const [name, setName] = useState("");
  const update = (key, spec) => onChange({ ...inputs, [key]: spec });
  const remove = (key) => {
    const next = { ...inputs };
    delete next[key];
    onChange(next);
  };
  return (
    <div>
      <table className="sx-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Type</th>
            <th scope="col">Required</th>
            <th scope="col">Default</th>
            <th scope="col">Description</th>
            <th scope="col">
              <span className="sx-visually-hidden">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {entries.map(([key, spec]) => (
            <tr key={key} data-input={key}>
              <td>
                <code>{key}</code>
              </td>
              <td>
                <select
                  aria-label={`Type of ${key}`}
                  value={spec.type || "string"}
                  disabled={readOnly}
                  onChange={(event) => update(key, { ...spec, type: event.target.value })}
                >
                  {INPUT_TYPES.map((t) => (
                    <option key={t}>{t}</option>
                  ))}
                </select>
              </td>
              <td>
                <input
                  type="checkbox"
                  aria-label={`${key} is required`}
                  checked={spec.required === true}
                  disabled={readOnly}
                  onChange={(event) => {
                    const next = { ...spec };
                    if (event.target.checked) next.required = true;
                    else delete next.required;
                    update(key, next);
                  }}
                />
              </td>
              <td>
                <input
                  type="text"
                  aria-label={`Default of ${key}`}
                  defaultValue={defaultText(spec)}
                  readOnly={readOnly}
                  onBlur={(event) => {
                    const next = { ...spec };
                    const value = parseDefault(spec.type, event.target.value);
                    if (value === undefined) delete next.default;
                    else next.default = value;
                    update(key, next);
                  }}
                />
              </td>
              <td>
                <input
                  type="text"
                  aria-label={`Description of ${key}`}
                  defaultValue={spec.description || ""}
                  readOnly={readOnly}
                  onBlur={(event) => {
                    const next = { ...spec };
                    if (event.target.value) next.description = event.target.value;
                    else delete next.description;
                    update(key, next);
                  }}
                />
              </td>
              <td>
                {!readOnly && (
                  <button type="button" className="sx-small" onClick={() => remove(key)}>
                    Remove <span className="sx-visually-hidden">{key}</span>
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!entries.length && <p className="sx-muted">No inputs: a run starts without any.</p>}
      {!readOnly && (
        <form
          className="sx-inline"
          onSubmit={(event) => {
            event.preventDefault();
            const key = name.trim();
            if (!key || (inputs && key in inputs)) return;
            update(key, { type: "string" });
            setName("");
          }}
        >
          <label>
            New input <input type="text" value={name} onChange={(event) => setName(event.target.value)} />
          </label>
          <button type="submit">Add input</button>
        </form>
      )}
    </div>
  );
}

export function WorkflowSettings({ workflow, readOnly, onSave }) {
  const [form, setForm] = useState({
    description: workflow.description || "",
    runnerType: workflow.runnerType || "",
    labels: (workflow.labels || []).join(", "),
    priority: String(workflow.priority ?? 5),
    timeoutSeconds: workflow.timeoutSeconds ? String(workflow.timeoutSeconds) : "",
  });
  const set = (key) => (event) => setForm({ ...form, [key]: event.target.value });
  return (
    <form
      className="sx-settings"
      onSubmit={(event) => {
        event.preventDefault();
        onSave({
          description: form.description,
          runnerType: form.runnerType.trim() || null,
          labels: form.labels.split(",").map((l) => l.trim()).filter(Boolean),
          priority: Number(form.priority),
          timeoutSeconds: form.timeoutSeconds.trim() ? Number(form.timeoutSeconds) : null,
        });
      }}
    >
      <label className="sx-option">
        <span>Description</span>
        <input type="text" value={form.description} readOnly={readOnly} onChange={set("description")} />
      </label>
      <label className="sx-option">
        <span>Runner type</span>
        <input type="text" value={form.runnerType} readOnly={readOnly} placeholder="any" onChange={set("runnerType")} />
      </label>
      <label className="sx-option">
        <span>Required runner labels (comma-separated)</span>
        <input type="text" value={form.labels} readOnly={readOnly} onChange={set("labels")} />
      </label>
      <label className="sx-option">
        <span>Priority</span>
        <select value={form.priority} disabled={readOnly} onChange={set("priority")}>
          {[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((p) => (
            <option key={p} value={String(p)}>
              {p}
            </option>
          ))}
        </select>
      </label>
      <label className="sx-option">
        <span>Timeout (seconds)</span>
        <input type="text" inputMode="numeric" value={form.timeoutSeconds} readOnly={readOnly} placeholder="none" onChange={set("timeoutSeconds")} />
      </label>
      {!readOnly && <button type="submit">Save settings</button>}
    </form>
  );
}
