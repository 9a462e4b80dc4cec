/**
 * The signed-in user's sessions, on the profile page: every browser, phone or script signed in to
 * the account, where and when it signed in and was last used, with this one marked. Any other
 * session can be signed out, one by one or all at once; its tokens stop working at once.
 */
import { useState } from 'react';
import { toApiError, request, type ApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { defineText, useLang, useText } from '../../i18n';
import { Badge, ErrorBox, Loading, Table, type Column } from '../../ui/components';
import { dateTime, shortDateTime } from '../../ui/format';

const text = defineText({
  en: {
    title: 'Sessions',
    intro: 'Every browser, device or script signed in to your account. Signing one out ends it at once.',
    caption: 'Your sessions',
    device: 'Device',
    signedIn: 'Signed in',
    lastUsed: 'Last used',
    actions: 'Actions',
    thisOne: 'This browser',
    unknownDevice: 'Unknown device',
    from: (ip: string) => `from ${ip}`,
    never: 'Not yet',
    signOut: 'Sign out',
    signOutOf: (device: string) => `Sign out ${device}`,
    signOutOthers: 'Sign out all other sessions',
    confirmOthers: (n: number) => `Sign out ${n === 1 ? 'the other session' : `all ${n} other sessions`}?`,
    confirm: 'Yes, sign out',
    cancel: 'Cancel',
    signedOut: 'Signed out.',
    signedOutOthers: (n: number) => (n === 1 ? 'One other session was signed out.' : `${n} other sessions were signed out.`),
    only: 'This is your only session.',
  },
  zh: {
    title: '登录会话',
    intro: '已登录你账户的所有浏览器、设备和脚本。退出某个会话后，它会立即失效。',
    caption: '你的登录会话',
    device: '设备',
    signedIn: '登录时间',
    lastUsed: '最近使用',
    actions: '操作',
    thisOne: '当前浏览器',
    unknownDevice: '未知设备',
    from: (ip: string) => `来自 ${ip}`,
    never: '尚未使用',
    signOut: '退出',
    signOutOf: (device: string) => `退出 ${device}`,
    signOutOthers: '退出其他所有会话',
    confirmOthers: (n: number) => `确定退出其他 ${n} 个会话吗？`,
    confirm: '确定退出',
    cancel: '取消',
    signedOut: '已退出。',
    signedOutOthers: (n: number) => `已退出其他 ${n} 个会话。`,
    only: '这是你唯一的登录会话。',
  },
});

interface Session {
  id: string;
  current: boolean;
  userAgent: string | null;
  clientIp: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
}

const SESSIONS = gql`
  query ProfileSessions {
    mySessions {
      id
      current
      userAgent
      clientIp
      createdAt
      lastUsedAt
      lastUsedIp
    }
  }
`;

const REVOKE = gql`
  mutation ProfileRevokeSession($id: ID!) {
    revokeSession(id: $id) {
      id
      revokedAt
    }
  }
`;

const REVOKE_OTHERS = gql`
  mutation ProfileRevokeOtherSessions {
    revokeOtherSessions
  }
`;

/** A short name for a client from its `User-Agent`: the browser and system when recognised. */
export function deviceName(agent: string | null): string | null {
  if (!agent) return null;
  const browser =
    [
      [/Edg\//, 'Edge'],
      [/OPR\//, 'Opera'],
      [/MicroMessenger\//, 'WeChat'],
      [/Firefox\//, 'Firefox'],
      [/Chrom(e|ium)\//, 'Chrome'],
      [/Safari\//, 'Safari'],
    ].find(([re]) => (re as RegExp).test(agent))?.[1] as string | undefined;
  const system =
    [
      [/Android/, 'Android'],
      [/iPhone|iPad|iOS/, 'iOS'],
      [/Windows/, 'Windows'],
      [/Mac OS X|Macintosh/, 'macOS'],
      [/Linux|X11/, 'Linux'],
    ].find(([re]) => (re as RegExp).test(agent))?.[1] as string | undefined;
  if (browser && system) return `${browser} · ${system}`;
  return browser ?? (agent.length > 48 ? `${agent.slice(0, 47)}…` : agent);
}

export function SessionsPanel() {
  const t = useText(text);
  const { locale } = useLang();
  const sessions = useQuery<{ mySessions: Session[] }>(SESSIONS);
  const [error, setError] = useState<ApiError>();
  const [notice, setNotice] = useState<string>();
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);

  const list = sessions.data?.mySessions ?? [];
  const others = list.filter((s) => !s.current).length;
  const name = (s: Session) => deviceName(s.userAgent) ?? t.unknownDevice;

  const run = async (action: () => Promise<string>) => {
    setError(undefined);
    setNotice(undefined);
    setBusy(true);
    try {
      setNotice(await action());
      sessions.reload();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };
  const signOut = (s: Session) =>
    run(async () => {
      await request(REVOKE, { id: s.id });
      return t.signedOut;
    });
  const signOutOthers = () =>
    run(async () => {
      const d = await request<{ revokeOtherSessions: number }>(REVOKE_OTHERS);
      return t.signedOutOthers(d.revokeOtherSessions);
    });

  const columns: Column<Session>[] = [
    {
      key: 'device',
      title: t.device,
      render: (s) => (
        <>
          <span title={s.userAgent ?? undefined}>{name(s)}</span> {s.current && <Badge tone="ok">{t.thisOne}</Badge>}
        </>
      ),
    },
    {
      key: 'signedIn',
      title: t.signedIn,
      render: (s) => (
        <>
          <span title={dateTime(s.createdAt, locale)}>{shortDateTime(s.createdAt, locale)}</span>
          {s.clientIp && <div className="muted">{t.from(s.clientIp)}</div>}
        </>
      ),
    },
    {
      key: 'lastUsed',
      title: t.lastUsed,
      render: (s) =>
        s.lastUsedAt ? (
          <>
            <span title={dateTime(s.lastUsedAt, locale)}>{shortDateTime(s.lastUsedAt, locale)}</span>
            {s.lastUsedIp && <div className="muted">{t.from(s.lastUsedIp)}</div>}
          </>
        ) : (
          <span className="muted">{t.never}</span>
        ),
    },
    {
      key: 'actions',
      title: t.actions,
      render: (s) =>
        s.current ? null : (
          <button type="button" className="danger" disabled={busy} aria-label={t.signOutOf(name(s))} onClick={() => void signOut(s)}>
            {t.signOut}
          </button>
        ),
    },
  ];

  return (
    <section className="card" aria-labelledby="profile-sessions">
      <h2 id="profile-sessions">{t.title}</h2>
      <p className="muted">{t.intro}</p>
      <ErrorBox error={sessions.error} onRetry={sessions.reload} />
      <Loading show={sessions.loading && !sessions.data} />
      {sessions.data && <Table caption={t.caption} columns={columns} rows={list} rowKey={(s) => s.id} />}
      <ErrorBox error={error} />
      {notice && (
        <p className="ok-text" role="status">
          {notice}
        </p>
      )}
      {sessions.data &&
        (others === 0 ? (
          <p className="muted">{t.only}</p>
        ) : confirming ? (
          <div className="row">
            <span>{t.confirmOthers(others)}</span>
            <button type="button" className="danger" disabled={busy} onClick={() => void signOutOthers()}>
              {t.confirm}
            </button>
            <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
              {t.cancel}
            </button>
          </div>
        ) : (
          <div>
            <button type="button" className="danger" disabled={busy} onClick={() => (setNotice(undefined), setConfirming(true))}>
              {t.signOutOthers}
            </button>
          </div>
        ))}
    </section>
  );
}
