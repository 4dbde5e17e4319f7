/** POSTs `body` as JSON to the HTTP input on 127.0.0.1:`port` under `tag`. */
export function postJson(port: number, tag: string, body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/${tag}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}
