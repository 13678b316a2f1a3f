DROP FUNCTION auth.consistency_token_point(text);
DROP FUNCTION auth.consistency_token();
