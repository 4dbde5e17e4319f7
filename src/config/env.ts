/**
 * `${VAR}` and `${VAR:-default}` from the environment; `$${` writes a literal `${`.
 * An unset variable without a default is an error: an empty shared_key or token must not
 * slip through silently. `${tag}`, `${hostname}`, `${uuid}`, `${chunk_id}` and `${time}` are left for
 * the components (paths, index names, record values), as in Fluentd.
 */
const PLACEHOLDERS = new Set(['tag', 'hostname', 'uuid', 'chunk_id', 'time']);

export function substituteEnv(text: string, env: NodeJS.ProcessEnv): { value: string; missing: string[] } {
  const missing: string[] = [];
  const value = text.replace(
    /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
    (whole, escaped, name, fallback) => {
      if (escaped) return whole.slice(1);
      if (PLACEHOLDERS.has(name as string)) return whole;
      const v = env[name as string];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback as string;
      if (v !== undefined) return v;
      missing.push(name as string);
      return '';
    },
  );
  return { value, missing };
}
