from pathlib import Path

DAG = '''
from datetime import datetime, timedelta
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.sensors.sms import EasifySmsStatusSensor

with DAG("proto", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    @task
    def send(to):
        return EasifyHook().send_sms("+13155550100", to, "Your order shipped")
    ok = send.override(task_id="send_ok")("+13151350000")
    #EasifySmsStatusSensor(task_id="deferred", sms_id=ok, sender="+13155550100", receiver="+13151350000", deferrable=True, poke_interval=0.3, timeout=30)
    EasifySmsStatusSensor(task_id="resched", sms_id=ok, sender="+13155550100", receiver="+13151350000", mode="reschedule", poke_interval=0.3, timeout=30)
    #EasifySmsStatusSensor(task_id="never", sms_id="987654321", sender="+13155550100", receiver="+13151350000", deferrable=True, poke_interval=0.3, timeout=2, retries=2, retry_delay=timedelta(seconds=1))
'''

def test_proto(airflow_home, sandbox):
    airflow_home.add_dag("proto", DAG)
    sandbox.configure(pending_seconds=1, delivered_seconds=2)
    r = airflow_home.dags_test("proto")
    print(r.state, r.tasks, r.tries, r.xcoms)
    Path("/tmp/t4/out.txt").write_text(r.output)
    for p in sorted(airflow_home.home.rglob("*.log")):
        print(p)
