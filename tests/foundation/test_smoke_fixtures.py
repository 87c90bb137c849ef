def test_login_as_logs_in(client, login_as):
    user = login_as("viewer")
    page = client.get("/")
    assert page.status_code == 200
    assert user.name in page.get_data(as_text=True)
