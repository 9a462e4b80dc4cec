/**
 * "Verify chain": re-checks the audit hash chain on the server page by page (each page starts
 * from the stored hash of the last row checked), showing how far it got, and stops at the first
 * break.
 */
import { useRef, useState } from 'react';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { defineText, useLang, useText } from '../../i18n';
import { ErrorBox } from '../../ui/components';
import { count } from '../../ui/format';

const text = defineText({
  en: {
    verify: 'Verify chain',
    verifying: 'Verifying…',
    stop: 'Stop',
    progress: (done: string, head: string) => `Checked up to row ${done} of ${head}`,
    intact: (rows: string) => `Intact: ${rows} rows checked, every hash matches.`,
    broken: (seq: string, reason: string) => `Broken at row ${seq}: ${reason}`,
    stopped: 'Stopped before the end.',
    progressLabel: 'Verification progress',
  },
  zh: {
    verify: '校验哈希链',
    verifying: '正在校验…',
    stop: '停止',
    progress: (done: string, head: string) => `已校验至第 ${done} 条，共 ${head} 条`,
    intact: (rows: string) => `完好：已校验 ${rows} 条，哈希全部一致。`,
    broken: (seq: string, reason: string) => `在第 ${seq} 条处断裂：${reason}`,
    stopped: '校验未完成即已停止。',
    progressLabel: '校验进度',
  },
});

const VERIFY = gql`
  query AuditPageVerify($afterSeq: Int!, $limit: Int!) {
    verifyAuditChain(afterSeq: $afterSeq, limit: $limit) {
      afterSeq
      lastSeq
      checkedRows
      intact
      brokenAtSeq
      reason
      headSeq
      done
    }
  }
`;

interface Verification {
  afterSeq: number;
  lastSeq: number;
  checkedRows: number;
  intact: boolean;
  brokenAtSeq: number | null;
  reason: string | null;
  headSeq: number;
  done: boolean;
}

type State =
  | { phase: 'idle' }
  | { phase: 'running' | 'stopped'; lastSeq: number; headSeq: number; checked: number }
  | { phase: 'intact'; lastSeq: number; headSeq: number; checked: number }
  | { phase: 'broken'; lastSeq: number; headSeq: number; checked: number; at: number | null; reason: string };

export function VerifyChain() {
  const t = useText(text);
  const { locale } = useLang();
  const [state, setState] = useState<State>({ phase: 'idle' });
  const [error, setError] = useState<ApiError>();
  const stop = useRef(false);

  const run = async () => {
    stop.current = false;
    setError(undefined);
    let afterSeq = 0;
    let checked = 0;
    setState({ phase: 'running', lastSeq: 0, headSeq: 0, checked: 0 });
    try {
      for (;;) {
        const { verifyAuditChain: v } = await request<{ verifyAuditChain: Verification }>(VERIFY, { afterSeq, limit: 5000 });
        checked += v.checkedRows;
        if (!v.intact) {
          setState({ phase: 'broken', lastSeq: v.lastSeq, headSeq: v.headSeq, checked, at: v.brokenAtSeq, reason: v.reason ?? '' });
          return;
        }
        if (v.done) {
          setState({ phase: 'intact', lastSeq: v.lastSeq, headSeq: v.headSeq, checked });
          return;
        }
        if (stop.current) {
          setState({ phase: 'stopped', lastSeq: v.lastSeq, headSeq: v.headSeq, checked });
          return;
        }
        setState({ phase: 'running', lastSeq: v.lastSeq, headSeq: v.headSeq, checked });
        if (v.lastSeq <= afterSeq) {
          // No progress and not done: do not loop.
          setState({ phase: 'stopped', lastSeq: v.lastSeq, headSeq: v.headSeq, checked });
          return;
        }
        afterSeq = v.lastSeq;
      }
    } catch (e) {
      setError(toApiError(e));
      setState({ phase: 'idle' });
    }
  };

  const running = state.phase === 'running';
  return (
    <div className="verify">
      <div className="row">
        <button type="button" onClick={() => void run()} disabled={running}>
          {running ? t.verifying : t.verify}
        </button>
        {running && (
          <button type="button" onClick={() => (stop.current = true)}>
            {t.stop}
          </button>
        )}
        {state.phase !== 'idle' && (
          <>
            <progress className="progress" aria-label={t.progressLabel} max={Math.max(state.headSeq, 1)} value={state.lastSeq} />
            <span className="muted" role="status">
              {t.progress(count(state.lastSeq, locale), count(state.headSeq, locale))}
            </span>
          </>
        )}
      </div>
      {state.phase === 'intact' && <p className="verdict ok-text" role="status">{t.intact(count(state.checked, locale))}</p>}
      {state.phase === 'broken' && (
        <p className="verdict bad-text" role="alert">
          {t.broken(state.at == null ? '?' : count(state.at, locale), state.reason)}
        </p>
      )}
      {state.phase === 'stopped' && <p className="verdict muted">{t.stopped}</p>}
      <ErrorBox error={error} />
    </div>
  );
}
