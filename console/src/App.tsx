/**
 * The console's frame: who is signed in, which view the hash names, and the navigation. Admin
 * views are shown to admins only; everyone has the chat and their own usage, API keys, alerts and
 * profile.
 * When the session ends (logout, refused refresh, a disabled account), the login page takes
 * over and says why.
 */
import { useEffect, useRef, useState, type ComponentType } from 'react';
import { request } from './api/client';
import { setServerZone } from './api/calendar';
import { useQuery } from './api/hooks';
import { gql } from './api/gql';
import { ACCOUNT_CHANGED, clear, current, onChange, type Session } from './api/session';
import { common } from './i18n/common';
import { LANGS, languagePicked, useLang, useText, type Lang } from './i18n';
import { href, navigate, useRoute, type Route } from './router';
import { Loading } from './ui/components';
import { Login } from './pages/Login';
import { Register } from './pages/Register';
import { ForgotPassword, ResetPassword } from './pages/Recover';
import { Overview } from './pages/admin/Overview';
import { Costs } from './pages/admin/Costs';
import { Calls } from './pages/admin/Calls';
import { Users } from './pages/admin/Users';
import { Plugins } from './pages/admin/Plugins';
import { Alerts } from './pages/admin/Alerts';
import { Logs } from './pages/admin/Logs';
import { Audit } from './pages/admin/Audit';
import { Chat } from './pages/user/Chat';
import { Usage } from './pages/user/Usage';
import { MyAlerts } from './pages/user/MyAlerts';
import { Profile } from './pages/user/Profile';
import { ApiKeys } from './pages/user/ApiKeys';

/** What every view receives. */
export interface ViewProps {
  route: Route;
  session: Session;
}

type TextKey = keyof (typeof common)['en'];

interface View {
  path: string;
  title: TextKey;
  component: ComponentType<ViewProps>;
  admin?: boolean;
}

const ADMIN_VIEWS: View[] = [
  { path: 'overview', title: 'overview', component: Overview, admin: true },
  { path: 'costs', title: 'costs', component: Costs, admin: true },
  { path: 'calls', title: 'calls', component: Calls, admin: true },
  { path: 'users', title: 'users', component: Users, admin: true },
  { path: 'plugins', title: 'plugins', component: Plugins, admin: true },
  { path: 'alerts', title: 'alerts', component: Alerts, admin: true },
  { path: 'logs', title: 'logs', component: Logs, admin: true },
  { path: 'audit', title: 'audit', component: Audit, admin: true },
];

const USER_VIEWS: View[] = [
  { path: 'chat', title: 'chat', component: Chat },
  { path: 'usage', title: 'usage', component: Usage },
  { path: 'keys', title: 'apiKeys', component: ApiKeys },
  { path: 'my-alerts', title: 'myAlerts', component: MyAlerts },
  { path: 'profile', title: 'profile', component: Profile },
];

/** What every page needs first: the server's calendar, and the user's saved preferences. */
const START = gql`
  query ConsoleStart {
    reportCalendar { timeZone }
    me { id settings }
  }
`;

const MY_SETTINGS = gql`
  query ConsoleMySettings {
    me { id settings }
  }
`;

const SAVE_LANGUAGE = gql`
  mutation ConsoleSaveLanguage($settings: JSON!) {
    updateProfile(input: { settings: $settings }) { id }
  }
`;

interface Start {
  reportCalendar: { timeZone: string };
  me: { id: string; settings: Record<string, unknown> | null };
}

const LOGOUT = gql`
  mutation ConsoleLogout {
    logout
  }
`;

function home(session: Session) {
  return session.user.role === 'ADMIN' ? '/overview' : '/chat';
}

export function App() {
  const [session, setSession] = useState<Session | null>(current);
  const [ended, setEnded] = useState<string>();
  const route = useRoute();
  const t = useText(common);

  useEffect(
    () =>
      onChange((next, why) => {
        setSession(next);
        if (!next && why && why !== 'logout') setEnded(why);
        if (next) setEnded(undefined);
      }),
    [],
  );

  const page = route.path[0];
  // Reset pages work signed in or not (a link from an email may open in any browser).
  if (page === 'forgot-password') return <ForgotPassword />;
  if (page === 'reset-password') return <ResetPassword token={route.params.get('token')} />;
  if (!session) {
    if (page === 'register') return <Register />;
    return <Login notice={ended ? t.sessionEnded : undefined} />;
  }
  if (!page || page === 'login' || page === 'register') {
    navigate(home(session), undefined, true);
    return null;
  }
  const view = [...ADMIN_VIEWS, ...USER_VIEWS].find((v) => v.path === page);
  const isAdmin = session.user.role === 'ADMIN';
  let body;
  if (!view) body = <p className="notice">{t.notFound}</p>;
  else if (view.admin && !isAdmin) body = <p className="notice">{t.forbiddenPage}</p>;
  else {
    const Component = view.component;
    body = <Component route={route} session={session} />;
  }
  return (
    <Shell session={session} active={page}>
      {body}
    </Shell>
  );
}

function Shell({ session, active, children }: { session: Session; active: string; children: React.ReactNode }) {
  const t = useText(common);
  const { lang, setLang } = useLang();
  const isAdmin = session.user.role === 'ADMIN';
  // The server's calendar first: pages count "today" in its zone (the browser's if it fails).
  const start = useQuery<Start>(START);
  if (start.data) setServerZone(start.data.reportCalendar.timeZone);
  const ready = !!start.data || !!start.error;
  // An account that owes a step (a new password an admin required, two-step sign-in an admin
  // must have) can do nothing else: say so once, and lead to the profile where it is done.
  const owed = start.error && (start.error.code === 'MFA_REQUIRED' || start.error.code === 'PASSWORD_CHANGE_REQUIRED') ? start.error : undefined;
  const recheck = start.reload;
  useEffect(() => {
    window.addEventListener(ACCOUNT_CHANGED, recheck);
    return () => window.removeEventListener(ACCOUNT_CHANGED, recheck);
  }, [recheck]);
  // A browser where no language was picked yet takes the one saved with the account.
  const saved = start.data?.me.settings?.lang;
  const apply = useRef(setLang);
  apply.current = setLang;
  useEffect(() => {
    if ((saved === 'en' || saved === 'zh') && !languagePicked()) apply.current(saved);
  }, [saved]);
  // A language picked here is saved with the account too (merged into its current settings).
  const switchLanguage = async (next: Lang) => {
    setLang(next);
    try {
      const { me } = await request<{ me: { settings: Record<string, unknown> | null } }>(MY_SETTINGS);
      await request(SAVE_LANGUAGE, { settings: { ...(me.settings ?? {}), lang: next } });
    } catch {
      // The page is in the new language either way; it is saved next time.
    }
  };
  const logout = async () => {
    await request(LOGOUT).catch(() => undefined);
    clear('logout');
  };
  const link = (v: View) => (
    <li key={v.path}>
      <a href={href(`/${v.path}`)} aria-current={active === v.path ? 'page' : undefined}>
        {t[v.title]}
      </a>
    </li>
  );
  return (
    <div className="shell">
      <a className="skip" href="#main">
        {t.consoleTitle}
      </a>
      <header className="topbar">
        <a className="brand" href={href(home(session))}>
          {t.appName} <span className="muted">{t.consoleTitle}</span>
        </a>
        <div className="topbar-right">
          <label className="lang">
            <span className="sr-only">{t.language}</span>
            <select value={lang} onChange={(e) => void switchLanguage(e.target.value as Lang)} aria-label={t.language}>
              {LANGS.map((l) => (
                <option key={l} value={l}>
                  {l === 'en' ? 'English' : '中文'}
                </option>
              ))}
            </select>
          </label>
          <span className="whoami" title={session.user.email}>
            <span className="sr-only">{t.signedInAs} </span>
            {session.user.displayName}
          </span>
          <button type="button" onClick={() => void logout()}>
            {t.logout}
          </button>
        </div>
      </header>
      <nav className="sidebar" aria-label={t.consoleTitle}>
        {isAdmin && (
          <>
            <h2>{t.navAdmin}</h2>
            <ul>{ADMIN_VIEWS.map(link)}</ul>
          </>
        )}
        <h2>{t.navMine}</h2>
        <ul>{USER_VIEWS.map(link)}</ul>
      </nav>
      <main id="main" tabIndex={-1}>
        {!ready && <Loading />}
        {ready && owed && (
          <p className="notice owed" role="alert">
            <strong>{t[owed.code as 'MFA_REQUIRED' | 'PASSWORD_CHANGE_REQUIRED']}</strong>{' '}
            {active !== 'profile' && <a href={href('/profile')}>{owed.code === 'MFA_REQUIRED' ? t.turnOnMfa : t.changePasswordNow}</a>}
          </p>
        )}
        {ready && (!owed || active === 'profile') && children}
      </main>
    </div>
  );
}
