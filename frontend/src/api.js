// The hub's JSON API, called with the browser's session cookie.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.details = error.details;
  }
}

export async function api(method, path, body, csrf) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** The located problems of a 422 (`{message, node?, edge?, param?}`; plain strings are read as messages). */
export function problemsOf(error) {
  const listed = error && error.details && Array.isArray(error.details.problems) ? error.details.problems : null;
  if (!listed) return [{ message: error.message }];
  return listed.map((p) => (typeof p === "string" ? { message: p } : p));
}
