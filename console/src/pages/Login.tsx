/**
 * Sign-in: email and password, then (with two-step sign-in on) a code from the authenticator app
 * or a recovery code, then the view the role starts on.
 */
import { useState, type FormEvent, type ReactNode } from 'react';
import { ApiError, request, toApiError } from '../api/client';
import { gql } from '../api/gql';
import { store, type Session } from '../api/session';
import { common } from '../i18n/common';
import { defineText, LANGS, useLang, useText, type Lang } from '../i18n';
import { ErrorBox, Field } from '../ui/components';
import { href, navigate } from '../router';

const text = defineText({
  en: {
    title: 'Sign in',
    email: 'Email',
    password: 'Password',
    submit: 'Sign in',
    busy: 'Signing in…',
    noAccount: 'No account yet?',
    register: 'Create one',
    forgot: 'Forgot your password?',
    tagline: 'One gateway for your team’s AI: calls, costs, budgets and alerts.',
    codeTitle: 'Two-step sign-in',
    codeIntro: 'Enter the 6-digit code from your authenticator app, or one of your recovery codes.',
    code: 'Code',
    verify: 'Verify',
    verifying: 'Checking…',
    back: 'Use another account',
    expired: 'That sign-in expired or had too many wrong codes. Sign in again.',
    wrongCode: 'That code is wrong or was already used. Enter the current code.',
  },
  zh: {
    title: '登录',
    email: '邮箱',
    password: '密码',
    submit: '登录',
    busy: '正在登录…',
    noAccount: '还没有账号？',
    register: '注册',
    forgot: '忘记密码？',
    tagline: '团队 AI 的统一网关：调用、费用、预算与告警。',
    codeTitle: '两步验证',
    codeIntro: '请输入身份验证器应用中的 6 位验证码，或一个恢复码。',
    code: '验证码',
    verify: '验证',
    verifying: '正在验证…',
    back: '使用其他账号',
    expired: '本次登录已过期或验证码错误次数过多，请重新登录。',
    wrongCode: '验证码错误或已被使用，请输入当前的验证码。',
  },
});

const LOGIN = gql`
  mutation ConsoleLogin($input: LoginInput!) {
    login(input: $input) {
      accessToken
      accessTokenExpiresAt
      refreshToken
      refreshTokenExpiresAt
      user { id email displayName role }
      mfaChallenge { challenge expiresAt }
    }
  }
`;

const COMPLETE = gql`
  mutation ConsoleCompleteMfaLogin($challenge: String!, $code: String!) {
    completeMfaLogin(challenge: $challenge, code: $code) {
      accessToken
      accessTokenExpiresAt
      refreshToken
      refreshTokenExpiresAt
      user { id email displayName role }
    }
  }
`;

interface LoginAnswer {
  accessToken: string | null;
  accessTokenExpiresAt: string | null;
  refreshToken: string | null;
  refreshTokenExpiresAt: string | null;
  user: Session['user'] | null;
  mfaChallenge: { challenge: string; expiresAt: string } | null;
}

function signedIn(session: Session) {
  store(session);
  navigate(session.user.role === 'ADMIN' ? '/overview' : '/chat', undefined, true);
}

export function LangSwitch() {
  const { lang, setLang } = useLang();
  const t = useText(common);
  return (
    <select className="lang-corner" value={lang} onChange={(e) => setLang(e.target.value as Lang)} aria-label={t.language}>
      {LANGS.map((l) => (
        <option key={l} value={l}>
          {l === 'en' ? 'English' : '中文'}
        </option>
      ))}
    </select>
  );
}

/** The frame of the pages before sign-in: the language switch, and a card titled with the app's
 * name (a form when `onSubmit` is given). */
export function AuthPage({ title, onSubmit, children }: { title: string; onSubmit?: (e: FormEvent) => void; children: ReactNode }) {
  const c = useText(common);
  const body = (
    <>
      <h1>
        {c.appName} · {title}
      </h1>
      {children}
    </>
  );
  return (
    <main className="auth" id="main">
      <LangSwitch />
      {onSubmit ? (
        <form className="card auth-card" onSubmit={onSubmit}>
          {body}
        </form>
      ) : (
        <div className="card auth-card">{body}</div>
      )}
    </main>
  );
}

export function Login({ notice }: { notice?: string }) {
  const t = useText(text);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [challenge, setChallenge] = useState<string>();
  const [expired, setExpired] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setExpired(false);
    try {
      const data = await request<{ login: LoginAnswer }>(LOGIN, { input: { email, password } });
      const { mfaChallenge, ...tokens } = data.login;
      if (mfaChallenge) {
        setPassword('');
        setChallenge(mfaChallenge.challenge);
      } else {
        signedIn(tokens as Session);
      }
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  if (challenge) {
    return (
      <CodeStep
        challenge={challenge}
        onRestart={(why) => {
          setChallenge(undefined);
          setExpired(why === 'expired');
        }}
      />
    );
  }
  return (
    <AuthPage title={t.title} onSubmit={(e) => void submit(e)}>
      <p className="muted">{t.tagline}</p>
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      {expired && (
        <p className="notice" role="status">
          {t.expired}
        </p>
      )}
      <ErrorBox error={error} />
      <Field label={t.email}>
        <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </Field>
      <Field label={t.password}>
        <input
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
      </Field>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? t.busy : t.submit}
      </button>
      <p>
        {t.noAccount} <a href={href('/register')}>{t.register}</a>
        {' · '}
        <a href={href('/forgot-password')}>{t.forgot}</a>
      </p>
    </AuthPage>
  );
}

/** The second step: a code for the challenge the password earned. */
function CodeStep({ challenge, onRestart }: { challenge: string; onRestart(why?: 'expired'): void }) {
  const t = useText(text);
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setProblem(undefined);
    setError(undefined);
    try {
      const data = await request<{ completeMfaLogin: Session }>(COMPLETE, { challenge, code });
      signedIn(data.completeMfaLogin);
    } catch (e) {
      const failure = toApiError(e);
      // A dead challenge (expired, used, too many wrong codes) needs the password again.
      if (failure.code === 'UNAUTHENTICATED') return onRestart('expired');
      setCode('');
      setProblem(failure.code === 'BAD_USER_INPUT' ? t.wrongCode : undefined);
      setError(failure.code === 'BAD_USER_INPUT' ? undefined : failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <AuthPage title={t.codeTitle} onSubmit={(e) => void submit(e)}>
      <p className="muted">{t.codeIntro}</p>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
      <Field label={t.code}>
        <input
          autoComplete="one-time-code"
          inputMode="text"
          autoFocus
          required
          maxLength={32}
          spellCheck={false}
          value={code}
          onChange={(e) => setCode(e.target.value)}
        />
      </Field>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? t.verifying : t.verify}
      </button>
      <p>
        <button type="button" className="link" onClick={() => onRestart()}>
          {t.back}
        </button>
      </p>
    </AuthPage>
  );
}
