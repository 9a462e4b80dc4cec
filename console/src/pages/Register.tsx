/** Sign-up, as the server allows it: open, by invite code, or closed (then it says so). */
import { useState, type FormEvent } from 'react';
import { ApiError, request, toApiError } from '../api/client';
import { gql } from '../api/gql';
import { useQuery } from '../api/hooks';
import { store, type Session } from '../api/session';
import { defineText, useText } from '../i18n';
import { ErrorBox, Field, Loading } from '../ui/components';
import { href, navigate } from '../router';
import { AuthPage } from './Login';

const text = defineText({
  en: {
    title: 'Create an account',
    email: 'Email',
    name: 'Display name',
    password: 'Password',
    passwordHint: (min: number, max: number) => `${min}–${max} characters, not easy to guess.`,
    invite: 'Invite code',
    submit: 'Create account',
    busy: 'Creating…',
    closed: 'Sign-up is closed on this server. Ask an administrator for an account.',
    haveAccount: 'Already have an account?',
    login: 'Sign in',
  },
  zh: {
    title: '注册账号',
    email: '邮箱',
    name: '显示名称',
    password: '密码',
    passwordHint: (min: number, max: number) => `${min}–${max} 个字符，不要太容易猜到。`,
    invite: '邀请码',
    submit: '注册',
    busy: '正在注册…',
    closed: '本服务器已关闭注册，请联系管理员开通账号。',
    haveAccount: '已有账号？',
    login: '登录',
  },
});

const REGISTRATION = gql`
  query ConsoleRegistration {
    registration { mode passwordMinLength passwordMaxLength }
  }
`;

const REGISTER = gql`
  mutation ConsoleRegister($input: RegisterInput!) {
    register(input: $input) {
      accessToken
      accessTokenExpiresAt
      refreshToken
      refreshTokenExpiresAt
      user { id email displayName role }
    }
  }
`;

interface Registration {
  registration: { mode: 'OPEN' | 'INVITE' | 'CLOSED'; passwordMinLength: number; passwordMaxLength: number };
}

export function Register() {
  const t = useText(text);
  const info = useQuery<Registration>(REGISTRATION);
  const [form, setForm] = useState({ email: '', displayName: '', password: '', inviteCode: '' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const mode = info.data?.registration.mode;
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const input = { ...form, inviteCode: mode === 'INVITE' ? form.inviteCode : undefined };
      const data = await request<{ register: Session }>(REGISTER, { input });
      store(data.register);
      navigate('/chat', undefined, true);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const set = (key: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) =>
    setForm((f) => ({ ...f, [key]: e.target.value }));
  return (
    <AuthPage title={t.title} onSubmit={(e) => void submit(e)}>
      <Loading show={info.loading && !info.data} />
      <ErrorBox error={info.error} onRetry={info.reload} />
      {mode === 'CLOSED' && <p className="notice">{t.closed}</p>}
      {(mode === 'OPEN' || mode === 'INVITE') && (
        <>
          <ErrorBox error={error} />
          <Field label={t.email}>
            <input type="email" autoComplete="email" required value={form.email} onChange={set('email')} />
          </Field>
          <Field label={t.name}>
            <input autoComplete="nickname" required maxLength={64} value={form.displayName} onChange={set('displayName')} />
          </Field>
          <Field
            label={t.password}
            hint={t.passwordHint(info.data!.registration.passwordMinLength, info.data!.registration.passwordMaxLength)}
          >
            <input
              type="password"
              autoComplete="new-password"
              required
              minLength={info.data!.registration.passwordMinLength}
              maxLength={info.data!.registration.passwordMaxLength}
              value={form.password}
              onChange={set('password')}
            />
          </Field>
          {mode === 'INVITE' && (
            <Field label={t.invite}>
              <input required autoComplete="off" value={form.inviteCode} onChange={set('inviteCode')} />
            </Field>
          )}
          <button type="submit" className="primary" disabled={busy}>
            {busy ? t.busy : t.submit}
          </button>
        </>
      )}
      <p>
        {t.haveAccount} <a href={href('/login')}>{t.login}</a>
      </p>
    </AuthPage>
  );
}
