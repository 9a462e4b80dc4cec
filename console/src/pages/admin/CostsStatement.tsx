/** The costs page's monthly statement card: pick a month and a user, see the lines and totals, download the CSV. */
import { useState } from 'react';
import { ApiError, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery, type QueryState } from '../../api/hooks';
import { current, refresh } from '../../api/session';
import { useText } from '../../i18n';
import { ErrorBox, Field, Loading, Table } from '../../ui/components';
import { personLabel, type Person } from './costsShared';
import { text } from './Costs.text';
import { type Row, useNumberColumns } from './costsRows';

const USERS = gql`
  query CostsUsers {
    users(first: 100) {
      nodes {
        id
        email
        displayName
      }
    }
  }
`;

export const STATEMENT = gql`
  query CostsStatement($userId: ID, $month: String!) {
    statement(userId: $userId, month: $month) {
      userId
      month
      lines {
        provider
        model
        currency
        requests
        promptTokens
        cachedPromptTokens
        completionTokens
        costMicros
      }
      totals {
        currency
        requests
        promptTokens
        cachedPromptTokens
        completionTokens
        costMicros
      }
    }
  }
`;

export interface Statement {
  userId: string;
  month: string;
  lines: Row[];
  totals: Row[];
}

/** Saves a text as a file through a Blob object URL and an <a download>. */
function saveFile(name: string, blob: Blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Fetches the statement CSV with the bearer token (refreshed once on a 401). */
async function fetchCsv(month: string, userId: string | undefined): Promise<Blob> {
  const path = `/statements/${encodeURIComponent(month)}.csv${userId ? `?userId=${encodeURIComponent(userId)}` : ''}`;
  const get = (token: string | undefined) =>
    fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} }).catch(() => {
      throw new ApiError('The server cannot be reached.', 'NETWORK');
    });
  let response = await get(current()?.accessToken);
  if (response.status === 401) {
    const renewed = await refresh().catch(() => null);
    if (renewed) response = await get(renewed.accessToken);
  }
  if (!response.ok) {
    let code = 'INTERNAL';
    let message = `The server answered ${response.status}.`;
    try {
      const body = (await response.json()) as { errors?: { message: string; extensions?: { code?: string } }[] };
      const first = body.errors?.[0];
      if (first) {
        message = first.message;
        code = first.extensions?.code ?? code;
      }
    } catch {
      // not JSON: keep the status
    }
    throw new ApiError(message, code);
  }
  return response.blob();
}

export function CostsStatement({
  statement,
  month,
  monthOk,
  statementUser,
  people,
  setParams,
}: {
  statement: QueryState<{ statement: Statement }>;
  month: string;
  monthOk: boolean;
  statementUser: string | undefined;
  people: Map<string, Person | null>;
  setParams: (next: Record<string, string | undefined>) => void;
}) {
  const t = useText(text);
  const numbers = useNumberColumns();
  const users = useQuery<{ users: { nodes: { id: string; email: string; displayName: string }[] } }>(USERS);
  const statementData = statement.data?.statement;
  const [csvBusy, setCsvBusy] = useState(false);
  const [csvError, setCsvError] = useState<ApiError>();
  const download = async () => {
    setCsvBusy(true);
    setCsvError(undefined);
    try {
      const blob = await fetchCsv(month, statementUser);
      saveFile(`statement-${statementUser ?? current()?.user.id ?? 'me'}-${month}.csv`, blob);
    } catch (error) {
      setCsvError(toApiError(error));
    } finally {
      setCsvBusy(false);
    }
  };

  return (
    <section className="card costs-card" aria-labelledby="costs-statement" data-testid="costs-statement">
      <h2 id="costs-statement">{t.statement}</h2>
      <div className="row">
        <Field label={t.month}>
          <input
            type="month"
            value={monthOk ? month : ''}
            onChange={(e) => setParams({ month: e.target.value || undefined })}
          />
        </Field>
        <Field label={t.whose}>
          <select value={statementUser ?? ''} onChange={(e) => setParams({ user: e.target.value || undefined })}>
            <option value="">{t.myself}</option>
            {statementUser && !users.data?.users.nodes.some((u) => u.id === statementUser) && (
              <option value={statementUser}>{personLabel(people, statementUser)}</option>
            )}
            {(users.data?.users.nodes ?? []).map((u) => (
              <option key={u.id} value={u.id}>
                {u.displayName} &lt;{u.email}&gt;
              </option>
            ))}
          </select>
        </Field>
        <button type="button" onClick={() => void download()} disabled={csvBusy || !monthOk}>
          {csvBusy ? t.downloading : t.download}
        </button>
      </div>
      <ErrorBox error={users.error} onRetry={users.reload} />
      {csvError && (
        <div>
          <p className="muted">{t.downloadFailed}</p>
          <ErrorBox error={csvError} />
        </div>
      )}
      {!monthOk && <p className="muted">{t.badMonth}</p>}
      <ErrorBox error={statement.error} onRetry={statement.reload} />
      <Loading show={statement.loading && !statementData} />
      {statementData && (
        <>
          <h3>{t.lines}</h3>
          <Table<Row>
            rows={statementData.lines}
            rowKey={(r) => `${r.provider}|${r.model}|${r.currency ?? ''}`}
            columns={[
              { key: 'provider', title: t.provider, render: (r) => r.provider ?? '—' },
              { key: 'model', title: t.model, render: (r) => r.model ?? '—' },
              ...numbers,
            ]}
          />
          <h3>{t.totals}</h3>
          <div data-testid="statement-totals">
            <Table<Row> rows={statementData.totals} rowKey={(r) => r.currency ?? ''} columns={numbers} />
          </div>
        </>
      )}
    </section>
  );
}
