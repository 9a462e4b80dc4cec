/**
 * The audit trail (admin): every mutation run, by whom, with what (redacted) arguments and how it
 * ended, newest first; how far the hash chain is linked; and a check of the chain's hashes.
 */
import { useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { Badge, Dialog, ErrorBox, Field, Loading, Page, Pager, Table, Tile, Tiles, usePager, type Column } from '../../ui/components';
import { count, dateTime, localInputToIso, ms } from '../../ui/format';
import { VerifyChain } from './AuditVerify';
import '../ops.css';

const text = defineText({
  en: {
    title: 'Audit',
    filters: 'Filters',
    actor: 'Actor (user id)',
    field: 'Mutation',
    fieldHint: 'e.g. setUserRole',
    outcome: 'Outcome',
    outcomeHint: 'OK or an error code',
    since: 'From',
    until: 'Until',
    clear: 'Clear',
    chain: 'Hash chain',
    chainedRows: 'Chained rows',
    headHash: 'Head hash',
    unchainedRows: 'Waiting to be chained',
    oldestAge: 'Oldest waiting for',
    noHead: 'none yet',
    chained: 'Chained',
    pending: 'Pending',
    seq: 'Seq',
    at: 'Time',
    role: 'Role',
    anonymous: 'anonymous',
    ip: 'Client IP',
    requestId: 'Request id',
    details: 'Audit row',
    arguments: 'Arguments (redacted)',
    operation: 'Operation',
    userAgent: 'User agent',
    prevHash: 'Previous hash',
    hash: 'Hash',
    notLinked: 'not linked yet',
  },
  zh: {
    title: '审计',
    filters: '筛选',
    actor: '操作者（用户 ID）',
    field: '变更操作',
    fieldHint: '例如 setUserRole',
    outcome: '结果',
    outcomeHint: 'OK 或错误码',
    since: '开始时间',
    until: '结束时间',
    clear: '清除',
    chain: '哈希链',
    chainedRows: '已入链记录',
    headHash: '链头哈希',
    unchainedRows: '等待入链',
    oldestAge: '最早一条已等待',
    noHead: '暂无',
    chained: '已入链',
    pending: '待入链',
    seq: '序号',
    at: '时间',
    role: '角色',
    anonymous: '匿名',
    ip: '客户端 IP',
    requestId: '请求 ID',
    details: '审计记录详情',
    arguments: '参数（已脱敏）',
    operation: '操作名',
    userAgent: 'User-Agent',
    prevHash: '前一哈希',
    hash: '哈希',
    notLinked: '尚未入链',
  },
});

interface AuditEntry {
  id: string;
  seq: string | null;
  chained: boolean;
  at: string;
  actorId: string | null;
  actorRole: string | null;
  operationName: string | null;
  field: string;
  arguments: unknown;
  outcome: string;
  clientIp: string | null;
  userAgent: string | null;
  requestId: string;
  prevHash: string | null;
  hash: string | null;
}

const AUDIT = gql`
  query AuditPage($filter: AuditLogFilter, $first: Int, $after: String) {
    auditLog(filter: $filter, first: $first, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        seq
        chained
        at
        actorId
        actorRole
        operationName
        field
        arguments
        outcome
        clientIp
        userAgent
        requestId
        prevHash
        hash
      }
    }
  }
`;

const CHAIN = gql`
  query AuditPageChain {
    auditChain {
      chainedRows
      headHash
      unchainedRows
      oldestUnchainedAt
      oldestUnchainedAgeMs
    }
  }
`;

interface Chain {
  chainedRows: number;
  headHash: string;
  unchainedRows: number;
  oldestUnchainedAt: string | null;
  oldestUnchainedAgeMs: number;
}

export function Audit({ route }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const p = route.params;
  const actor = p.get('actor') ?? '';
  const field = p.get('field') ?? '';
  const outcome = p.get('outcome') ?? '';
  const since = p.get('since') ?? '';
  const until = p.get('until') ?? '';
  const filter = {
    actorId: actor || undefined,
    field: field || undefined,
    outcome: outcome || undefined,
    since: localInputToIso(since),
    until: localInputToIso(until),
  };
  const pager = usePager(JSON.stringify(filter));
  const log = useQuery<{ auditLog: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: AuditEntry[] } }>(
    AUDIT,
    { filter, first: 50, after: pager.cursor },
  );
  const chain = useQuery<{ auditChain: Chain }>(CHAIN);
  const [selected, setSelected] = useState<AuditEntry>();

  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const get = (k: string) => String(f.get(k) ?? '').trim();
    navigate('/audit', { actor: get('actor'), field: get('field'), outcome: get('outcome'), since: get('since'), until: get('until') });
  };
  const refresh = () => {
    log.reload();
    chain.reload();
  };
  const ch = chain.data?.auditChain;
  const COLUMNS: Column<AuditEntry>[] = [
              {
                key: 'chained',
                title: t.chained,
                render: (r) => (r.chained ? <Badge tone="ok">{t.chained}</Badge> : <Badge tone="muted">{t.pending}</Badge>),
              },
              { key: 'seq', title: t.seq, numeric: true, render: (r) => r.seq ?? '—' },
              { key: 'at', title: t.at, render: (r) => <span className="nowrap">{dateTime(r.at, locale)}</span> },
              { key: 'field', title: t.field, render: (r) => <code>{r.field}</code> },
              {
                key: 'actor',
                title: t.actor,
                render: (r) =>
                  r.actorId ? (
                    <span title={r.actorRole ?? undefined}>
                      <code>{r.actorId.slice(0, 13)}…</code> {r.actorRole && <span className="muted">{r.actorRole}</span>}
                    </span>
                  ) : (
                    <span className="muted">{t.anonymous}</span>
                  ),
              },
              {
                key: 'outcome',
                title: t.outcome,
                render: (r) => <Badge tone={r.outcome === 'OK' ? 'ok' : 'bad'}>{r.outcome}</Badge>,
              },
              { key: 'ip', title: t.ip, render: (r) => r.clientIp ?? '—' },
              { key: 'req', title: t.requestId, render: (r) => <code title={r.requestId}>{r.requestId.slice(-12)}</code> },
            ];

  return (
    <Page
      title={t.title}
      actions={
        <button type="button" onClick={refresh}>
          {c.refresh}
        </button>
      }
    >
      <section className="card" aria-labelledby="audit-chain">
        <h2 id="audit-chain">{t.chain}</h2>
        <ErrorBox error={chain.error} onRetry={chain.reload} />
        <Loading show={chain.loading && !ch} />
        {ch && (
          <Tiles>
            <Tile label={t.chainedRows} value={count(ch.chainedRows, locale)} />
            <Tile label={t.headHash} value={<span className="hash">{ch.headHash ? ch.headHash.slice(0, 16) + '…' : t.noHead}</span>} hint={ch.headHash ? <span className="hash">{ch.headHash}</span> : undefined} />
            <Tile label={t.unchainedRows} value={count(ch.unchainedRows, locale)} />
            <Tile label={t.oldestAge} value={ch.unchainedRows ? ms(ch.oldestUnchainedAgeMs, locale) : '—'} hint={ch.oldestUnchainedAt ? dateTime(ch.oldestUnchainedAt, locale) : undefined} />
          </Tiles>
        )}
        <VerifyChain />
      </section>

      <form className="card row" onSubmit={submit} aria-label={t.filters} key={route.params.toString()}>
        <Field label={t.actor}>
          <input name="actor" defaultValue={actor} />
        </Field>
        <Field label={t.field} hint={t.fieldHint}>
          <input name="field" defaultValue={field} />
        </Field>
        <Field label={t.outcome} hint={t.outcomeHint}>
          <input name="outcome" defaultValue={outcome} />
        </Field>
        <Field label={t.since}>
          <input name="since" type="datetime-local" defaultValue={since} />
        </Field>
        <Field label={t.until}>
          <input name="until" type="datetime-local" defaultValue={until} />
        </Field>
        <button type="submit">{c.apply}</button>
        <button type="button" onClick={() => navigate('/audit')}>
          {t.clear}
        </button>
      </form>
      <ErrorBox error={log.error} onRetry={log.reload} />
      <Loading show={log.loading && !log.data} />
      <Table<AuditEntry>
        caption={t.title}
        rows={log.data?.auditLog.nodes ?? []}
        rowKey={(r) => r.id}
        selected={selected?.id}
        onRowClick={(r) => setSelected(r)}
        columns={COLUMNS}
      />
      <Pager pager={pager} hasNext={!!log.data?.auditLog.pageInfo.hasNextPage} endCursor={log.data?.auditLog.pageInfo.endCursor} />
      <Dialog open={!!selected} title={t.details} onClose={() => setSelected(undefined)}>
        {selected && (
          <div className="detail audit-detail">
            <dl>
              <dt>{t.field}</dt>
              <dd>
                <code>{selected.field}</code>
              </dd>
              <dt>{t.operation}</dt>
              <dd>{selected.operationName ?? '—'}</dd>
              <dt>{t.actor}</dt>
              <dd>
                <code>{selected.actorId ?? t.anonymous}</code>
              </dd>
              <dt>{t.role}</dt>
              <dd>{selected.actorRole ?? '—'}</dd>
              <dt>{t.userAgent}</dt>
              <dd>{selected.userAgent ?? '—'}</dd>
              <dt>{t.requestId}</dt>
              <dd>
                <code>{selected.requestId}</code>
              </dd>
              <dt>{t.arguments}</dt>
              <dd>
                <pre className="json">{JSON.stringify(selected.arguments, null, 2)}</pre>
              </dd>
              <dt>{t.prevHash}</dt>
              <dd className="hash">{selected.chained ? selected.prevHash || '—' : t.notLinked}</dd>
              <dt>{t.hash}</dt>
              <dd className="hash">{selected.hash ?? t.notLinked}</dd>
            </dl>
            <div className="dialog-actions">
              <button type="button" onClick={() => setSelected(undefined)}>
                {c.close}
              </button>
            </div>
          </div>
        )}
      </Dialog>
    </Page>
  );
}
