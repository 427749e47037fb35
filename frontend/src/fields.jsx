// The parameter form of a node, built from its activity's parameter JSON Schema, and the expression helper.
import { useEffect, useId, useRef, useState } from "react";
import { isTemplate } from "./model.js";

const typesOf = (schema) => (Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : []);

/** How a parameter is edited: "bool", "number", "text", "long" (textarea) or "json". */
export function editorKind(schema) {
  const types = typesOf(schema || {});
  if (types.length === 1 && types[0] === "boolean") return "bool";
  if (types.length === 1 && (types[0] === "integer" || types[0] === "number")) return "number";
  if (types.length === 1 && types[0] === "string") {
    return schema.format === "textarea" || schema.format === "code" ? "long" : "text";
  }
  return "json";
}

const jsonText = (value) => (value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value, null, 2));

function parseJsonField(text) {
  const trimmed = text.trim();
  if (!trimmed) return { value: undefined };
  try {
    return { value: JSON.parse(trimmed) };
  } catch {
    if (isTemplate(trimmed) || !/^[[{"]/.test(trimmed)) return { value: text };
    return { error: "not valid JSON" };
  }
}

function parseNumber(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  return /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(trimmed) ? Number(trimmed) : text;
}

/** A list of the expressions in scope, each a button that inserts `{{ expression }}`. */
export function ScopeMenu({ scope, onInsert, label }) {
  const [open, setOpen] = useState(false);
  const id = useId();
  const groups = scope.filter((g) => g.items.length);
  return (
    <span className="sx-scope">
      <button type="button" className="sx-small" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
        {"{{ }}"} <span className="sx-visually-hidden">insert an expression into {label}</span>
      </button>
      {open && (
        <div className="sx-scope-menu" id={id} role="group" aria-label={`Expressions for ${label}`}>
          {groups.map((group) => (
            <div key={group.title} className="sx-scope-group">
              <div className="sx-scope-title">{group.title}</div>
              {group.items.map((item) => (
                <button
                  type="button"
                  key={item.expression}
                  className="sx-scope-item"
                  title={item.hint || item.expression}
                  onClick={() => {
                    onInsert(`{{ ${item.expression} }}`);
                    setOpen(false);
                  }}
                >
                  <code>{item.expression}</code>
                </button>
              ))}
            </div>
          ))}
          {!groups.length && <p className="sx-muted">Nothing in scope yet.</p>}
        </div>
      )}
    </span>
  );
}

/** One parameter's field. `onChange(value)` (undefined removes it); `onCommit()` closes an edit for undo. */
export function ParamField({ name, schema, value, required, problem, scope, onChange, onCommit, readOnly }) {
  const kind = editorKind(schema);
  const id = useId();
  const [draft, setDraft] = useState(jsonText(value));
  const [error, setError] = useState(null);
  const editing = useRef(false);
  // Follow outside changes (undo, the JSON tab), never rewrite what the person is typing.
  useEffect(() => {
    if (!editing.current) setDraft(jsonText(value));
  }, [value]);
  const describe = [schema.description, schema.default !== undefined ? `default ${JSON.stringify(schema.default)}` : null]
    .filter(Boolean)
    .join(" · ");
  const insert = (text) => {
    const current = typeof value === "string" ? value : value === undefined ? "" : jsonText(value);
    onChange(current ? `${current}${text}` : text);
    onCommit();
  };
  let control;
  if (kind === "bool") {
    const mode = value === undefined ? "" : value === true ? "true" : value === false ? "false" : "expression";
    control = (
      <span className="sx-inline">
        <select
          id={id}
          value={mode}
          disabled={readOnly}
          onChange={(event) => {
            const choice = event.target.value;
            onChange(choice === "" ? undefined : choice === "true" ? true : choice === "false" ? false : "{{  }}");
            onCommit();
          }}
        >
          <option value="">(not set)</option>
          <option value="true">true</option>
          <option value="false">false</option>
          <option value="expression">expression…</option>
        </select>
        {mode === "expression" && (
          <input
            type="text"
            aria-label={`${name} expression`}
            value={value}
            readOnly={readOnly}
            onChange={(event) => onChange(event.target.value)}
            onBlur={onCommit}
          />
        )}
      </span>
    );
  } else if (kind === "number") {
    control = (
      <input
        id={id}
        type="text"
        inputMode="decimal"
        value={draft}
        placeholder={schema.default !== undefined ? String(schema.default) : ""}
        readOnly={readOnly}
        onChange={(event) => {
          setDraft(event.target.value);
          onChange(parseNumber(event.target.value));
        }}
        onBlur={onCommit}
      />
    );
  } else if (kind === "text" || kind === "long") {
    const listId = schema.enum ? `${id}-choices` : undefined;
    const props = {
      id,
      value: draft,
      readOnly,
      placeholder: schema.default !== undefined ? String(schema.default) : "",
      onChange: (event) => {
        setDraft(event.target.value);
        onChange(event.target.value === "" ? undefined : event.target.value);
      },
      onBlur: onCommit,
    };
    control =
      kind === "long" ? (
        <textarea {...props} rows={4} className="sx-code" spellCheck={false} />
      ) : (
        <>
          <input type="text" list={listId} {...props} />
          {schema.enum && (
            <datalist id={listId}>
              {schema.enum.map((choice) => (
                <option key={choice} value={choice} />
              ))}
            </datalist>
          )}
        </>
      );
  } else {
    control = (
      <textarea
        id={id}
        rows={3}
        className="sx-code"
        spellCheck={false}
        value={draft}
        readOnly={readOnly}
        placeholder="JSON, or text with {{ }}"
        onChange={(event) => {
          setDraft(event.target.value);
          const parsed = parseJsonField(event.target.value);
          setError(parsed.error || null);
          if (!parsed.error) onChange(parsed.value);
        }}
        onBlur={onCommit}
      />
    );
  }
  return (
    <div
      className={`sx-field${problem ? " sx-field-problem" : ""}`}
      data-param={name}
      onFocus={() => {
        editing.current = true;
      }}
      onBlur={() => {
        editing.current = false;
      }}
    >
      <div className="sx-field-head">
        <label htmlFor={id}>
          {name}
          {required && <span aria-hidden="true"> *</span>}
          {required && <span className="sx-visually-hidden"> (required)</span>}
        </label>
        {!readOnly && kind !== "bool" && <ScopeMenu scope={scope} onInsert={insert} label={name} />}
      </div>
      {control}
      {describe && <small className="sx-hint">{describe}</small>}
      {error && <small className="sx-error">{name}: {error}</small>}
      {problem && (
        <small className="sx-error" role="alert">
          {problem}
        </small>
      )}
    </div>
  );
}
